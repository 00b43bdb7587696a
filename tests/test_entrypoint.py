"""container/entrypoint.sh outside Docker (SM_ROOT points it at a temporary /opt/ml)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from serving.artifact import Model
from tests.conftest import REPO, TINY_HP

ENTRYPOINT = REPO / "container" / "entrypoint.sh"


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "SM_ROOT": str(root)})


def test_no_command_without_a_training_layout_exits_2_with_usage(tmp_path: Path) -> None:
    (tmp_path / "input" / "data").mkdir(parents=True)  # an empty channel folder is no layout
    result = run(tmp_path)
    assert result.returncode == 2
    assert "no command given" in result.stderr and "Usage" in result.stderr


@pytest.mark.parametrize("layout", ["hyperparameters", "channel"])
def test_no_command_with_a_training_layout_trains(tmp_path: Path, tiny_corpus: Path,
                                                  layout: str) -> None:
    channels = tmp_path / "input" / "data"
    channels.mkdir(parents=True)
    (channels / "train").symlink_to(tiny_corpus / "tiny-train")
    if layout == "hyperparameters":
        config = tmp_path / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(
            json.dumps({k: json.dumps(v) for k, v in TINY_HP.items()}))
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training" in result.stderr
    assert Model.load(tmp_path / "model").classifier.classes


def test_no_command_training_failure_is_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text('{"alpha": "-3"}')
    result = run(tmp_path)
    assert result.returncode == 1
    assert (tmp_path / "output" / "failure").read_text().startswith("HyperparameterError")
