"""``docker run IMAGE train`` as a SageMaker training job runs it: /opt/ml mounted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

# Small enough for the tiny corpus (as tests/conftest.py's TINY_HP); WordNet is in the image.
HP = {
    "ntm_vocab_size": 40,
    "ntm_min_df": 1,
    "min_df": 1,
    "ntm_parts": 2,
    "num_topics": 5,
    "ntm_lemmatize": True,
}


def train(
    run_container: Callable[..., Any],
    opt_ml: Path,
    *extra_volumes: tuple[Path, str],
    user: str | None = None,
) -> tuple[int, str]:
    volumes = {str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}}
    for source, target in extra_volumes:
        volumes[str(source)] = {"bind": target, "mode": "rw"}
    container = run_container("train", volumes=volumes, network_mode="none", user=user)
    status = container.wait(timeout=600)["StatusCode"]
    return status, container.logs().decode(errors="replace")


def test_train_then_serve(
    run_container: Callable[..., Any], opt_ml: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    root = opt_ml(HP)
    status, logs = train(run_container, root)
    assert status == 0, logs
    model = root / "model"
    assert (model / "manifest.json").is_file(), logs
    assert not (root / "output" / "failure").exists()
    ntm = root / "output" / "data" / "ntm"
    assert (ntm / "auxiliary" / "vocab.txt").is_file()
    assert list((ntm / "train").iterdir())
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["hyperparameters"]["num_topics"] == HP["num_topics"]

    served = serve(model=model)
    response = served.post(
        "Subject: orbit launch\n\nthe nasa shuttle launch to orbit and the moon mission",
        "text/plain",
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "sci.space"


def test_train_into_separately_mounted_model_dir(
    run_container: Callable[..., Any], opt_ml: Callable[..., Path], tmp_path: Path
) -> None:
    """SageMaker (and its SDK's local mode) mount /opt/ml/model on its own: training must
    write into that folder, not replace it."""
    root = opt_ml(HP)
    model = tmp_path / "model-volume"
    model.mkdir(mode=0o777)
    model.chmod(0o777)
    status, logs = train(run_container, root, (model, "/opt/ml/model"))
    failure = root / "output" / "failure"
    assert status == 0, (failure.read_text() if failure.exists() else "") + logs
    assert (model / "manifest.json").is_file()


def test_bad_hyperparameter_writes_failure(
    run_container: Callable[..., Any], opt_ml: Callable[..., Path]
) -> None:
    root = opt_ml({**HP, "alpha": "-1"})
    status, logs = train(run_container, root)
    assert status != 0, logs
    failure = root / "output" / "failure"
    assert failure.is_file(), logs
    reason = failure.read_text()
    assert "alpha" in reason
    assert len(reason) > 0


def test_train_as_non_root(run_container: Callable[..., Any], opt_ml: Callable[..., Path]) -> None:
    root = opt_ml(HP)
    status, logs = train(run_container, root, user="1000:1000")
    assert status == 0, logs
    assert (root / "model" / "manifest.json").is_file()
