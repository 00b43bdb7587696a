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


@pytest.mark.parametrize("env, expected", [
    ({}, "glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "glibc.malloc.hugetlb=0"),
    ({"SERVING_HUGE_PAGES": " Off"}, ""),
    ({"SERVING_HUGE_PAGES": "0", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
     "glibc.malloc.arena_max=2"),
    ({"SERVING_HUGE_PAGES": "yes"}, "glibc.malloc.hugetlb=1"),
])
def test_serve_starts_python_with_the_heap_tunable(tmp_path: Path, env: dict[str, str],
                                                   expected: str) -> None:
    # The same rule as serving.heap.tunables, so the server need not exec itself again: the
    # command the entry point runs is a stand-in `python` that prints what it was given.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\nprintf "%s|%s" "${GLIBC_TUNABLES:-}" "$*"\n')
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items()
            if k not in ("GLIBC_TUNABLES", "SERVING_HUGE_PAGES")}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve", "--port", "9"], capture_output=True, text=True,
        timeout=60, env={**base, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{expected}|-m serving.serve --port 9"
    from serving import heap

    current = env.get("GLIBC_TUNABLES")
    if env.get("SERVING_HUGE_PAGES", "").strip().lower() not in ("0", "off", "false", "no"):
        assert (heap.tunables(current) or current) == expected
