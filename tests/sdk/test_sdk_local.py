"""The image driven by a client nobody here wrote: the SageMaker Python SDK v2 in local mode.

The SDK lives in its own venv (``.work/sdk-venv``, made by scripts/setup.sh: its dependency pins
conflict with ours); each test runs tests/sdk/sdk_client.py there and asserts on what the SDK
returned. Local mode runs the image with Debian's ``docker-compose`` (``docker run ... train`` /
``serve``, ``/opt/ml`` mounted), calls ``/ping``, ``/invocations`` and ``/execution-parameters``.
Nothing leaves the machine: the client refuses non-loopback connections and reports any attempt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from serving.app import Server
from serving.artifact import Model
from serving.config import Settings
from tests.conftest import (
    DATA_TGZ,
    REPO,
    TINY_HP,
    docker_or_skip,
    free_port,
    need_real_data,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.sdk]

SDK_PYTHON = Path(os.environ.get("SM_SDK_PYTHON", REPO / ".work" / "sdk-venv" / "bin" / "python"))
CLIENT = Path(__file__).with_name("sdk_client.py")
IMAGE = os.environ.get("SM_TEST_IMAGE", "sm-text-pipeline:latest")
COMPOSE_DIR = "com.docker.compose.project.working_dir"
DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer",
        "God and the church: faith, prayer and the bible",
        "render the polygon texture with shading\nand a second line"]


@pytest.fixture(scope="session")
def sdk() -> Iterator[Path]:
    if not SDK_PYTHON.exists():
        pytest.skip(f"no SageMaker SDK venv at {SDK_PYTHON} (bash scripts/setup.sh makes it)")
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose is not installed (bash scripts/setup.sh installs it)")
    client = docker_or_skip()
    try:
        client.images.get(IMAGE)
    except Exception:  # docker.errors.ImageNotFound
        client.close()
        pytest.skip(f"the image {IMAGE} is not built (make image)")
    yield SDK_PYTHON
    # The SDK creates the bridge network "sagemaker-local" for its compose projects and keeps it.
    for network in client.networks.list(names=["sagemaker-local"]):
        with contextlib.suppress(Exception):
            network.remove()
    client.close()


def run_sdk(sdk: Path, tmp_path: Path, scenario: str, **spec: Any) -> tuple[dict, str]:
    """Run one scenario in the SDK venv; (its result, its console output)."""
    spec = {"image": IMAGE, "port": free_port(), "work": str(tmp_path), **spec}
    spec_path, result_path = tmp_path / f"{scenario}-spec.json", tmp_path / f"{scenario}.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PYTHONPATH": ""}
    try:
        proc = subprocess.run([str(sdk), str(CLIENT), scenario, str(spec_path), str(result_path)],
                              capture_output=True, text=True, timeout=1200, env=env,
                              cwd=tmp_path)
    finally:
        remove_compose_containers(tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    result = json.loads(result_path.read_text())
    assert "crash" not in result, result.get("trace", "") + output[-4000:]
    assert result["blocked_connections"] == [], "the SDK tried to leave the machine"
    return result, output


def remove_compose_containers(work: Path) -> None:
    """Local mode leaves exited containers behind (e.g. after a failed job): remove the ones its
    docker-compose projects under ``work`` created."""
    client = docker_or_skip()
    try:
        for container in client.containers.list(all=True, filters={"label": COMPOSE_DIR}):
            if container.labels.get(COMPOSE_DIR, "").startswith(str(work)):
                container.remove(force=True)
    finally:
        client.close()


def model_tarball(model_dir: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return path


def load_model_data(model_data: str, into: Path) -> Model:
    path = Path(model_data.removeprefix("file://"))
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    return Model.load(into)


@pytest.fixture(scope="session")
def tiny_tarball(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_tarball(tiny_model_dir, tmp_path_factory.mktemp("sdk-model") / "model.tar.gz")


def realtime(model: Model, body: bytes, content_type: str, accept: str,
             stage: str = "classify") -> bytes:
    """The answer of the same code in real-time mode, for comparison (documents up to 1M
    characters: the test split holds a 160,616-character post, over the real-time default)."""
    server = Server(model, Settings(stage=stage, model_dir="unused", max_doc_chars=10**6))
    return server.invoke(body, content_type, accept, None)[0]


# --- training ------------------------------------------------------------------------------------


def test_fit_plain_hyperparameters_from_a_channel_holding_the_archive(
        sdk: Path, tmp_path: Path, tiny_corpus: Path) -> None:
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "20news-bydate.tar.gz", "w:gz") as tar:
        for split in ("tiny-train", "tiny-test"):
            tar.add(tiny_corpus / split, arcname=split)
    hp = {**TINY_HP, "alpha": 0.02}
    result, _ = run_sdk(sdk, tmp_path, "train", train=str(channel), output=str(tmp_path / "out"),
                        hyperparameters=hp)
    assert "error" not in result, result["error"]
    assert all(not k.startswith("sagemaker_") for k in result["sent_hyperparameters"])
    model = load_model_data(result["model_data"], tmp_path / "model")
    assert model.manifest["hyperparameters"]["alpha"] == 0.02
    assert model.manifest["hyperparameters"]["ntm_vocab_size"] == 40
    assert model.manifest["training_data"]["n_test"] == 40  # the archive's test split


def test_fit_json_encoded_hyperparameters_and_sagemaker_keys(
        sdk: Path, tmp_path: Path, tiny_corpus: Path) -> None:
    """Script mode (source_dir + entry_point) JSON-encodes every value and adds
    sagemaker_program, sagemaker_submit_directory, sagemaker_container_log_level,
    sagemaker_job_name and sagemaker_region; the container reads the values and ignores those."""
    hp = {**TINY_HP, "headers": "keep", "alpha": 0.03}
    result, _ = run_sdk(sdk, tmp_path, "train", train=str(tiny_corpus / "tiny-train"),
                        output=str(tmp_path / "out"), hyperparameters=hp, framework=True)
    assert "error" not in result, result["error"]
    sent = result["sent_hyperparameters"]
    assert sent["headers"] == '"keep"' and sent["alpha"] == "0.03"
    assert {"sagemaker_program", "sagemaker_submit_directory", "sagemaker_job_name",
            "sagemaker_region", "sagemaker_container_log_level"} <= set(sent)
    model = load_model_data(result["model_data"], tmp_path / "model")
    assert model.manifest["hyperparameters"]["headers"] == "keep"
    assert model.manifest["hyperparameters"]["alpha"] == 0.03


def test_bad_hyperparameter_surfaces_the_containers_reason(
        sdk: Path, tmp_path: Path, tiny_corpus: Path) -> None:
    result, output = run_sdk(sdk, tmp_path, "train", train=str(tiny_corpus / "tiny-train"),
                             output=str(tmp_path / "out"), hyperparameters={"alpha": -3})
    assert "error" in result and "model_data" not in result
    assert "HyperparameterError: hyper-parameter alpha=-3" in output


# --- real-time -----------------------------------------------------------------------------------


def test_predictor_with_every_serializer(sdk: Path, tmp_path: Path, tiny_tarball: Path,
                                         tiny_model_dir: Path) -> None:
    result, _ = run_sdk(sdk, tmp_path, "predict", model_data=str(tiny_tarball),
                        endpoint=f"sdk-{uuid.uuid4().hex[:8]}", docs=DOCS)
    model = Model.load(tiny_model_dir)
    expected = orjson.loads(realtime(model, orjson.dumps(DOCS), "application/json",
                                     "application/json"))["predictions"]
    labels = [p["label"] for p in expected]
    assert result["json"]["predictions"] == expected  # JSONSerializer / JSONDeserializer
    assert [row[0] for row in result["csv"]] == labels  # CSVSerializer (rows quoted) / CSV
    assert result["plain"]["predictions"][0] == expected[0]  # IdentitySerializer('text/plain')
    assert result["jsonlines"] == expected  # JSONLinesSerializer / JSONLinesDeserializer
    # custom_attributes="top_k=4": all four classes of the tiny model instead of the default 3
    assert len(result["custom_attributes"][0]["top_k"]) == 4
    assert json.loads(result["inference_id_body"])["predictions"][0] == expected[0]
    assert result["inference_id_header"] == "sdk-inference-42"  # echoed as X-Request-Id
    error = json.loads(result["error_body"])
    assert error["error"] == "bad_request" and error["request_id"] == "sdk-inference-43"
    assert json.loads(result["raw_predict"])["predictions"][0] == expected[0]


def test_ntm_features_recordio_read_with_the_sdk_helpers(sdk: Path, tmp_path: Path,
                                                         tiny_tarball: Path) -> None:
    result, _ = run_sdk(sdk, tmp_path, "predict", model_data=str(tiny_tarball),
                        endpoint=f"sdk-{uuid.uuid4().hex[:8]}", docs=DOCS, stage="ntm-features",
                        env={"SERVING_STAGE": "ntm-features"})
    records, dense = result["records"], result["dense_rows"]
    assert len(records) == len(dense) == len(DOCS)
    for record, row in zip(records, dense, strict=True):
        assert record["shape"] == [len(row)]
        assert {k: v for k, v in zip(record["keys"], record["values"], strict=True)} == {
            i: v for i, v in enumerate(row) if v}


# --- batch transform -----------------------------------------------------------------------------


def _jsonl_posts(path: Path, limit: int | None) -> list[str]:
    from serving.data import load_splits

    test = load_splits(str(DATA_TGZ)).test
    assert test is not None
    texts = test.texts[:limit]
    path.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts))
    return texts


@pytest.fixture(scope="session")
def real_tarball(real_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_tarball(real_model_dir, tmp_path_factory.mktemp("sdk-real") / "model.tar.gz")


def _transform(sdk: Path, tmp_path: Path, tarball: Path, input_path: Path, strategy: str,
               accept: str) -> list[bytes]:
    out = tmp_path / f"out-{strategy}-{accept.replace('/', '_')}"
    result, _ = run_sdk(sdk, tmp_path, "transform", model_data=str(tarball),
                        input=str(input_path), output=str(out), strategy=strategy,
                        accept=accept, content_type="application/jsonlines")
    assert len(result["outputs"]) == 1
    data = Path(result["outputs"][0]).read_bytes()
    assert data.endswith(b"\n")  # AssembleWith=Line: a newline after each response
    return data[:-1].split(b"\n")


@pytest.mark.data
@pytest.mark.parametrize(("strategy", "accept"), [("SingleRecord", "application/jsonlines"),
                                                  ("MultiRecord", "text/csv"),
                                                  ("MultiRecord", "application/json")])
def test_transformer_output_lines_match_input_lines(sdk: Path, tmp_path: Path,
                                                    real_tarball: Path, real_model_dir: Path,
                                                    strategy: str, accept: str) -> None:
    need_real_data()
    # (MultiRecord JSON Lines: the whole test split below.)
    n = 150 if strategy == "SingleRecord" else 1500
    input_path = tmp_path / "posts.jsonl"
    texts = _jsonl_posts(input_path, n)
    lines = _transform(sdk, tmp_path, real_tarball, input_path, strategy, accept)
    assert len(lines) == len(texts)
    expected = orjson.loads(realtime(Model.load(real_model_dir), input_path.read_bytes(),
                                     "application/jsonlines", "application/json"))["predictions"]
    if accept == "text/csv":
        labels = [line.split(b",")[0].decode() for line in lines]
    elif accept == "application/json":
        labels = [orjson.loads(line)["predictions"][0]["label"] for line in lines]
    else:
        labels = [orjson.loads(line)["label"] for line in lines]
    assert labels == [p["label"] for p in expected]


FULL = os.environ.get("SM_SDK_FULL_TRANSFORM", "1") != "0"


@pytest.mark.data
@pytest.mark.skipif(not FULL, reason="SM_SDK_FULL_TRANSFORM=0")
def test_whole_test_split_as_one_batch_transform(sdk: Path, tmp_path: Path, real_tarball: Path,
                                                 real_model_dir: Path) -> None:
    """The done-when run: 7,532 posts (about 15 MB of JSON Lines) → 7,532 lines, labels equal
    the real-time answers, accuracy as in metrics.json."""
    from serving.data import load_splits

    need_real_data()
    test = load_splits(str(DATA_TGZ)).test
    assert test is not None
    input_path = tmp_path / "test-split.jsonl"
    input_path.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in test.texts))
    lines = _transform(sdk, tmp_path, real_tarball, input_path, "MultiRecord",
                       "application/jsonlines")
    assert len(lines) == len(test) == 7532
    labels = [orjson.loads(line)["label"] for line in lines]
    model = Model.load(real_model_dir)
    expected = orjson.loads(realtime(model, input_path.read_bytes(), "application/jsonlines",
                                     "application/json"))["predictions"]
    assert labels == [p["label"] for p in expected]
    truth = [test.label_names[i] for i in test.labels]
    accuracy = sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)
    metrics = json.loads((real_model_dir / "metrics.json").read_text())
    print(f"batch transform of the test split: accuracy {accuracy:.4f} "
          f"(metrics.json {metrics['accuracy']:.4f})")
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)


def test_the_client_refuses_to_leave_the_machine(sdk: Path) -> None:
    """The guard the scenarios run under: an AWS name lookup or an outside address is refused
    and recorded (so an empty record in the other tests means nothing tried to leave)."""
    code = ("import sys, socket; sys.path.insert(0, sys.argv[1]); import sdk_client as c\n"
            "c._guard_sockets()\n"
            "for target in ('logs.us-west-2.amazonaws.com', '192.0.2.1'):\n"
            "    try:\n"
            "        socket.create_connection((target, 443), timeout=1)\n"
            "    except OSError:\n"
            "        pass\n"
            "print(c.BLOCKED)\n")
    proc = subprocess.run([str(sdk), "-c", code, str(CLIENT.parent)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert "logs.us-west-2.amazonaws.com" in proc.stdout and "192.0.2.1" in proc.stdout
