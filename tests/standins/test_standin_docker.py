"""The stand-in images as SageMaker runs them: ``docker run -v MODEL:/opt/ml/model IMAGE serve``
with ``SAGEMAKER_BIND_TO_PORT``, ports published on 127.0.0.1 only (build them with
``bash scripts/build_standins.sh``; skipped with the reason when Docker or an image is absent)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from standin_helpers import NUM_TOPICS, planted_counts

from serving import formats
from serving.mediatypes import parse_media_type
from tests.conftest import docker_or_skip, remove_labelled

pytestmark = pytest.mark.docker
# build_standins.sh's image names (its STANDIN_PREFIX, as tests/e2e/conftest.py reads it).
STANDIN_PREFIX = os.environ.get("STANDIN_PREFIX", "sm-text-pipeline")
IMAGES = {role: f"{STANDIN_PREFIX}-{role}-standin:latest" for role in ("ntm", "knn")}
LABEL = "sm-text-pipeline.standin-test"
RUN_ID = uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker_or_skip()
    for image in IMAGES.values():
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"{image} is not built (bash scripts/build_standins.sh)")
    yield client
    remove_labelled(client, LABEL, RUN_ID)
    client.close()


@pytest.fixture
def run(docker_client: Any) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(role: str, model: Path | None, port: int, env: dict[str, str] | None = None) -> Any:
        volumes = {str(model): {"bind": "/opt/ml/model", "mode": "ro"}} if model else {}
        container = docker_client.containers.run(
            IMAGES[role],
            "serve",
            detach=True,
            labels={LABEL: RUN_ID},
            volumes=volumes,
            environment={"SAGEMAKER_BIND_TO_PORT": str(port), **(env or {})},
            ports={f"{port}/tcp": ("127.0.0.1", None)},
        )
        started.append(container)
        return container

    yield start
    for container in started:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def url_of(container: Any, port: int, timeout: float = 60.0) -> str:
    container.reload()
    binding = container.ports[f"{port}/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    url = f"http://127.0.0.1:{binding['HostPort']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return url
        container.reload()
        if container.status not in ("created", "running"):
            break
        time.sleep(0.1)
    pytest.fail(f"{container.image.tags} did not answer /ping:\n{container.logs().decode()}")


def test_images_are_labelled_stand_ins(docker_client: Any) -> None:
    for role, name in IMAGES.items():
        config = docker_client.images.get(name).attrs["Config"]
        labels = config["Labels"]
        assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
        assert "not AWS code" in labels["org.opencontainers.image.description"]
        assert config["Entrypoint"] == ["python", "-m", "standins"]
        assert f"STANDIN_ROLE={role}" in config["Env"]


def test_both_images_serve_the_pipeline_on_the_bind_port(trained: Path, run: Any) -> None:
    ntm = run("ntm", trained / "ntm", 9081)
    knn = run(
        "knn",
        trained / "knn",
        9082,
        env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json; verbose=true"},
    )
    ntm_url, knn_url = url_of(ntm, 9081), url_of(knn, 9082)
    counts, groups = planted_counts(per_group=2, seed=3)
    rio = "application/x-recordio-protobuf"
    body = formats.encode_ntm_input(counts, parse_media_type(rio))
    topics = requests.post(
        f"{ntm_url}/invocations",
        data=body,
        timeout=30,
        headers={"Content-Type": rio, "Accept": "application/jsonlines"},
    )
    assert topics.status_code == 200 and topics.headers["Content-Type"] == "application/jsonlines"
    W = formats.decode_ntm_output(
        topics.content, parse_media_type("application/jsonlines"), NUM_TOPICS
    )
    refused = requests.post(
        f"{knn_url}/invocations",
        data=topics.content,
        timeout=30,
        headers={"Content-Type": "application/jsonlines"},
    )
    assert refused.status_code == 422 and refused.json()["error"] == "unprocessable_entity"
    answer = requests.post(
        f"{knn_url}/invocations",
        timeout=30,
        data=formats.encode_knn_input(W, parse_media_type("text/csv")),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    rows = formats.decode_knn_output(answer.content, parse_media_type("application/json"))
    train_groups = planted_counts()[1]
    assert (
        np.mean([train_groups[lab] == g for (lab, _), g in zip(rows, groups, strict=True)]) >= 0.9
    )
    for container in (ntm, knn):
        started = time.monotonic()
        container.stop(timeout=30)  # SIGTERM reaches gunicorn (exec-form entry point)
        assert time.monotonic() - started < 20
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, container.logs().decode()


def test_a_missing_model_stops_the_container_with_a_message(run: Any) -> None:
    container = run("ntm", None, 8080)
    assert container.wait(timeout=60)["StatusCode"] == 3
    assert "cannot load the ntm stand-in model" in container.logs().decode()
