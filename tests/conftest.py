"""Shared fixtures: a small corpus the tests make, models trained on it (and on the real data
when ../shared is there), and a real gunicorn server on 127.0.0.1."""

from __future__ import annotations

import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
DATA_TGZ = SHARED / "data" / "20news-bydate.tar.gz"
NLTK_DATA = SHARED / "nltk_data"
if NLTK_DATA.is_dir():
    os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))
HAVE_WORDNET = (NLTK_DATA / "corpora" / "wordnet.zip").exists()

TOPICS = {
    "rec.autos": "car engine wheel brake dealer driving tire transmission speed highway",
    "sci.space": "orbit nasa shuttle launch moon satellite rocket mission astronaut planet",
    "comp.graphics": "image pixel render polygon texture bitmap color display shading graphics",
    "talk.religion": "god faith church bible belief prayer scripture jesus moral religion",
}
COMMON = ["the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "this",
          "as", "was", "are", "be", "have"]


def make_doc(rng: random.Random, topic: str, n_words: int = 40) -> str:
    own = TOPICS[topic].split()
    others = [w for t, ws in TOPICS.items() if t != topic for w in ws.split()]
    words = []
    for _ in range(n_words):
        roll = rng.random()
        words.append(rng.choice(own) if roll < 0.6 else
                     rng.choice(others) if roll < 0.65 else rng.choice(COMMON))
    subject = " ".join(rng.sample(own, 3))
    return (f"From: someone{rng.randint(1, 99)}@example.edu\nSubject: {subject}\n"
            f"Organization: Example University\nLines: 3\n\n" + " ".join(words) +
            "\nmail me at person@example.com or see http://example.com/page\n")


def write_tiny_corpus(directory: Path, per_class: int = 30, seed: int = 0) -> Path:
    """A 20news-like folder: train/<group>/<n> and test/<group>/<n>."""
    rng = random.Random(seed)
    for split, count in (("train", per_class), ("test", per_class // 3)):
        for topic in TOPICS:
            folder = directory / f"tiny-{split}" / topic
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / str(1000 + i)).write_text(make_doc(rng, topic), encoding="latin-1")
    return directory


def write_tiny_csv(path: Path, per_class: int = 20, seed: int = 1) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "id", "title"])
        for topic in TOPICS:
            for i in range(per_class):
                writer.writerow([make_doc(rng, topic), topic, f"{topic}-{i}", f"doc {i}"])
    return path


TINY_HP = {"ntm_vocab_size": 40, "ntm_min_df": 1, "min_df": 1, "ntm_parts": 2, "num_topics": 5,
           "ntm_lemmatize": HAVE_WORDNET}


def train_model(data: Path | str, model_dir: Path, output_dir: Path,
                hp: dict | None = None) -> Path:
    from serving import train
    from serving.hyperparameters import parse

    train.run(str(data), model_dir, output_dir, parse(hp if hp is not None else TINY_HP))
    return model_dir


@pytest.fixture(params=["compiled", "numpy"])
def word_scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the C word scanner (``serving._wordscan``, which a dev install builds:
    a missing one fails here) and again with the numpy paths alone."""
    from serving import hashtable

    if request.param == "numpy":
        monkeypatch.setattr(hashtable, "COMPILED", None)
    elif hashtable.COMPILED is None:
        pytest.fail("serving._wordscan is not built: pip install -e . needs a C compiler "
                    "and the Python headers (bash scripts/setup.sh)")
    return str(request.param)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tiny-model")
    train_model(tiny_corpus, base / "model", base / "output")
    return base / "model", base / "output"


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_trained: tuple[Path, Path]) -> Path:
    return tiny_trained[0]


def need_real_data() -> None:
    if not DATA_TGZ.exists():
        pytest.skip(f"the real 20 Newsgroups data is not at {DATA_TGZ} (../shared absent)")


@pytest.fixture(scope="session")
def real_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need_real_data()
    cached = os.environ.get("REAL_MODEL_DIR")
    if cached and (Path(cached) / "manifest.json").exists():
        return Path(cached), Path(os.environ.get("REAL_OUTPUT_DIR", cached))
    base = tmp_path_factory.mktemp("real-model")
    train_model(DATA_TGZ, base / "model", base / "output", hp={})
    return base / "model", base / "output"


@pytest.fixture(scope="session")
def real_model_dir(real_trained: tuple[Path, Path]) -> Path:
    return real_trained[0]


def docker_or_skip(timeout: int = 120) -> Any:
    """A docker SDK client for a daemon that answers, or skip the test with the reason."""
    try:
        import docker
    except ImportError:
        pytest.skip("the docker Python SDK is not installed (pip install -e '.[dev]')")
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # no socket, daemon down, no permission
        pytest.skip(f"no Docker daemon answers ({exc}); start it: bash scripts/start_dockerd.sh")
    return client


def remove_labelled(client: Any, label: str, value: str) -> None:
    """Remove every container a test session labelled ``label=value`` (left by failures)."""
    for container in client.containers.list(all=True, filters={"label": f"{label}={value}"}):
        container.remove(force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    port: int

    def post(self, body: bytes | str, content_type: str = "text/plain",
             accept: str | None = None, **headers: str) -> requests.Response:
        hdrs = {"Content-Type": content_type, **headers}
        if accept is not None:
            hdrs["Accept"] = accept
        return requests.post(f"{self.url}/invocations", data=body, headers=hdrs, timeout=30)

    def terminate_timed(self) -> float:
        """SIGTERM and wait for the exit (at most 30 s): the seconds it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        return time.monotonic() - started

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch(module_args: list[str], env: dict[str, str], port: int, name: str = "server",
           timeout: float = 60) -> RunningServer:
    """``python -m <module_args>`` with ``env`` added, healthy on 127.0.0.1:``port``/ping."""
    process = subprocess.Popen([sys.executable, "-m", *module_args], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = RunningServer(f"http://127.0.0.1:{port}", process, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the {name} exited with {process.returncode}: {err[-2000:]}")
        try:
            if requests.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the {name} did not answer /ping in {timeout:.0f} s")


def start_server(model_dir: Path, stage: str = "classify", workers: int = 1,
                 env: dict[str, str] | None = None, timeout: float = 60) -> RunningServer:
    port = free_port()
    return launch(["serving.serve"], {
        "SM_MODEL_DIR": str(model_dir), "SERVING_STAGE": stage,
        "SAGEMAKER_BIND_TO_PORT": str(port), "SERVING_HOST": "127.0.0.1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), "SERVING_LOG_LEVEL": "WARNING",
        **(env or {})}, port, timeout=timeout)


@pytest.fixture(scope="session")
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(model_dir: Path, stage: str = "classify", **kwargs: object) -> RunningServer:
        server = start_server(model_dir, stage, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
