"""Fixtures for the container tests: the Docker client, the image, and containers that are
always removed (even when a test fails), with ports published on 127.0.0.1 only.

Every test here needs a running Docker daemon and the built image (``make image``); without
either they are skipped with the reason. ``SM_TEST_IMAGE`` picks another image tag.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import docker_or_skip, remove_labelled

IMAGE = os.environ.get("SM_TEST_IMAGE", "sm-text-pipeline:latest")
SESSION_LABEL = "sm-text-pipeline.test-session"
SESSION_ID = uuid.uuid4().hex[:12]
CONTAINER_PORT = 8080


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = docker_or_skip()
    yield client
    # Whatever a failed test left behind (fixtures below remove their own first).
    remove_labelled(client, SESSION_LABEL, SESSION_ID)
    client.close()


@pytest.fixture(scope="session")
def image(docker_client: Any) -> Any:
    import docker

    try:
        return docker_client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"the image {IMAGE} is not built (make image)")


@dataclass
class Served:
    """A running ``serve`` container and its address on the host."""

    container: Any
    url: str
    port: int
    seconds_to_ping: float

    def post(
        self,
        body: bytes | str,
        content_type: str = "text/plain",
        accept: str | None = "application/json",
        **headers: str,
    ) -> requests.Response:
        hdrs = {"Content-Type": content_type, **headers}
        if accept is not None:
            hdrs["Accept"] = accept
        return requests.post(f"{self.url}/invocations", data=body, headers=hdrs, timeout=60)

    def exec(self, *cmd: str, user: str = "") -> tuple[int, str]:
        result = self.container.exec_run(list(cmd), user=user, demux=False)
        return result.exit_code, result.output.decode(errors="replace")


def logs_of(container: Any, tail: int = 60) -> str:
    try:
        return container.logs(tail=tail).decode(errors="replace")
    except Exception as exc:  # the container is gone
        return f"(no logs: {exc})"


def wait_for_ping(
    container: Any, url: str, timeout: float = 90.0, started: float | None = None
) -> float:
    """Seconds from ``started`` (a time.monotonic(); default now) until GET /ping answers 200;
    fails with the log if the container exits or the time runs out."""
    started = time.monotonic() if started is None else started
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        container.reload()
        if container.status not in ("created", "running"):
            pytest.fail(
                f"the container exited ({container.attrs['State']}) before /ping "
                f"answered:\n{logs_of(container)}"
            )
        if time.monotonic() - started > timeout:
            pytest.fail(f"no 200 from {url}/ping in {timeout:.0f} s:\n{logs_of(container)}")
        time.sleep(0.05)


@pytest.fixture
def run_container(docker_client: Any, image: Any) -> Iterator[Callable[..., Any]]:
    """Start a detached container of the image; removed after the test whatever happens."""
    started: list[Any] = []

    def run(command: list[str] | str | None, **kwargs: Any) -> Any:
        labels = {SESSION_LABEL: SESSION_ID, **kwargs.pop("labels", {})}
        container = docker_client.containers.run(
            IMAGE, command, detach=True, labels=labels, **kwargs
        )
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True)


@pytest.fixture
def serve(run_container: Callable[..., Any], model_dir: Path) -> Callable[..., Served]:
    """``docker run -d -v MODEL:/opt/ml/model:ro -p 127.0.0.1::PORT IMAGE serve``, then wait
    for /ping. Keyword arguments: env, user, port (inside the container), model."""

    def start(
        env: dict[str, str] | None = None,
        user: str = "",
        port: int = CONTAINER_PORT,
        model: Path | None = None,
        **kwargs: Any,
    ) -> Served:
        environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **(env or {})}
        started = time.monotonic()  # `docker run` included, as SageMaker would see it
        container = run_container(
            "serve",
            environment=environment,
            user=user or None,
            volumes={str(model or model_dir): {"bind": "/opt/ml/model", "mode": "ro"}},
            ports={f"{port}/tcp": ("127.0.0.1", None)},
            **kwargs,
        )
        container.reload()
        host_port = int(container.ports[f"{port}/tcp"][0]["HostPort"])
        url = f"http://127.0.0.1:{host_port}"
        seconds = wait_for_ping(container, url, started=started)
        return Served(container, url, host_port, seconds)

    return start


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The session's tiny model (tests/conftest.py trains it on the host), copied to a folder
    every user may read: the non-root container must be able to load it."""
    target = tmp_path_factory.mktemp("container-model") / "model"
    shutil.copytree(tiny_model_dir, target)
    make_world_readable(target)
    return target


def make_world_readable(root: Path) -> None:
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture
def opt_ml(tmp_path: Path, tiny_corpus: Path) -> Callable[..., Path]:
    """A SageMaker training layout: /opt/ml/input/config/*.json and the train/test channels
    from the tiny 20news-like corpus. Call with the hyper-parameters (a name -> value dict;
    values are sent as strings, as SageMaker does)."""

    def make(hyperparameters: dict[str, Any]) -> Path:
        root = tmp_path / "opt_ml"
        config = root / "input" / "config"
        config.mkdir(parents=True)
        hp = {k: v if isinstance(v, str) else json.dumps(v) for k, v in hyperparameters.items()}
        (config / "hyperparameters.json").write_text(json.dumps(hp))
        channels = {"train": tiny_corpus / "tiny-train", "test": tiny_corpus / "tiny-test"}
        (config / "inputdataconfig.json").write_text(
            json.dumps({name: {"TrainingInputMode": "File"} for name in channels})
        )
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        for name, source in channels.items():
            shutil.copytree(source, root / "input" / "data" / name)
        # The container may run as a user other than the test's: let it write its outputs.
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        return root

    return make
