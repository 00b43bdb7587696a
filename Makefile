# sm-text-pipeline: every target is safe to run on a fresh machine of this kind.
# `make help` lists the targets (the `## ` comments below).
SHELL := /bin/bash
PYTHON ?= python3
SHARED ?= ../shared
DATA ?= $(SHARED)/data/20news-bydate.tar.gz
WORK ?= .work
MODEL_DIR ?= $(WORK)/model
OUTPUT_DIR ?= $(WORK)/output
IMAGE ?= sm-text-pipeline:latest
PORT ?= 8080

.PHONY: help setup lint test test-fast test-sdk train image run stop demo bench clean

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "variables: DATA=$(DATA) MODEL_DIR=$(MODEL_DIR) IMAGE=$(IMAGE) PORT=$(PORT)"

setup: ## install what the project needs (Debian packages, NLTK data, the project, dockerd)
	bash scripts/setup.sh

LINT_PATHS = serving standins scripts tests bench

lint: ## ruff over the code and the tests
	$(PYTHON) -m ruff check $(LINT_PATHS)

test-fast: ## the tests that need neither Docker nor the AWS emulation
	$(PYTHON) -m pytest -m "not docker and not aws and not slow" -q

test-sdk: setup ## the SageMaker Python SDK v2 (local mode) against the built image (in `test` too)
	bash scripts/build_image.sh
	$(PYTHON) -m pytest -m sdk -q

test: setup ## set up, lint, build the images, run every test (what CI runs)
	$(PYTHON) -m ruff check $(LINT_PATHS)
	bash scripts/build_image.sh
	bash scripts/build_standins.sh
	$(PYTHON) -m pytest -q

# The model is rebuilt when DATA names other data than the model was trained on (the data's
# path is recorded in $(WORK)/data.path, rewritten only when it changes) and when the code that
# writes the artifact changed since: a benchmark or `make run` never serves an artifact of an
# older layout (older float32 weights, hash tables built at load instead of memory-mapped).
TRAIN_SOURCES := $(wildcard serving/*.py) pyproject.toml
DATA_STAMP := $(WORK)/data.path
$(shell mkdir -p $(WORK); [ "$$(cat $(DATA_STAMP) 2>/dev/null)" = "$(DATA)" ] \
	|| printf '%s' "$(DATA)" > $(DATA_STAMP))

$(MODEL_DIR)/manifest.json: $(DATA_STAMP) $(TRAIN_SOURCES)
	$(PYTHON) -m serving.train --data $(DATA) --model-dir $(MODEL_DIR) \
		--output-data-dir $(OUTPUT_DIR)

train: setup $(MODEL_DIR)/manifest.json ## train into MODEL_DIR (again when DATA or the code changes)

image: ## build the Docker image (IMAGE)
	bash scripts/build_image.sh

run: setup train image ## set up, train, build, serve on 127.0.0.1:PORT, classify a sample
	bash scripts/run_local.sh $(abspath $(MODEL_DIR)) $(IMAGE) $(PORT)

stop: ## stop every container that `make run` or scripts/run_local.sh started
	bash scripts/run_local.sh --stop

demo: ## the whole recommendation pipeline offline (moto, registry, local SageMaker)
	bash scripts/local_demo.sh

bench: setup train ## benchmarks; results in bench/results/
	$(PYTHON) -m bench.run --model-dir $(MODEL_DIR) --data $(DATA)
	$(PYTHON) -m bench.explain --model-dir $(MODEL_DIR) --data $(DATA)

clean: stop ## remove build and training outputs
	rm -rf $(WORK) build dist *.egg-info
