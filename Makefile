# sm-text-pipeline: every target is safe to run on a fresh machine of this kind.
SHELL := /bin/bash
PYTHON ?= python3
SHARED ?= ../shared
DATA ?= $(SHARED)/data/20news-bydate.tar.gz
export NLTK_DATA ?= $(abspath $(SHARED)/nltk_data)
WORK ?= .work
MODEL_DIR ?= $(WORK)/model
OUTPUT_DIR ?= $(WORK)/output
IMAGE ?= sm-text-pipeline:latest
PORT ?= 8080

.PHONY: help setup lint test test-fast test-sdk train image run bench demo clean

help:
	@echo "make run    - set up, train on 20news, build the image, serve it, classify a sample"
	@echo "make test   - set up and run every test (unit, data, HTTP, container, AWS-emulated)"
	@echo "make bench  - run the benchmarks; results in bench/results/"
	@echo "make image  - build the Docker image"
	@echo "make train  - train the model into $(MODEL_DIR)"

setup:
	bash scripts/setup.sh

LINT_PATHS = serving standins scripts tests bench

lint:
	$(PYTHON) -m ruff check $(LINT_PATHS)

test-fast:
	$(PYTHON) -m pytest -m "not docker and not aws and not slow" -q

# The SageMaker Python SDK v2 (local mode) against the built image; part of `make test` too.
test-sdk: setup
	bash scripts/build_image.sh
	$(PYTHON) -m pytest -m sdk -q

test: setup
	$(PYTHON) -m ruff check $(LINT_PATHS)
	bash scripts/build_image.sh
	bash scripts/build_standins.sh
	$(PYTHON) -m pytest -q

$(MODEL_DIR)/manifest.json:
	$(PYTHON) -m serving.train --data $(DATA) --model-dir $(MODEL_DIR) --output-data-dir $(OUTPUT_DIR)

train: $(MODEL_DIR)/manifest.json

image:
	bash scripts/build_image.sh

run: setup train image
	bash scripts/run_local.sh $(abspath $(MODEL_DIR)) $(IMAGE) $(PORT)

bench: setup train
	$(PYTHON) -m bench.run --model-dir $(MODEL_DIR) --data $(DATA)

clean:
	rm -rf $(WORK) build dist *.egg-info
