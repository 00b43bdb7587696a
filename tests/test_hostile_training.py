"""Hostile training input: deep JSON in data and hyper-parameters, a model directory that is not
ours, malformed CSV/JSON Lines and tiny data sets. Every failure names the file and line (or what
to change), writes a short failure file under SageMaker, and deletes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving import data, model_dir, train
from serving.artifact import MANIFEST
from serving.hyperparameters import HyperparameterError, parse
from tests.conftest import REPO, TINY_HP, write_tiny_csv
from tests.test_hostile_input import DEEP, deep_array, deep_object


def test_deep_training_line_writes_a_failure_file(tmp_path: Path) -> None:
    channel = tmp_path / "input" / "data" / "train"
    channel.mkdir(parents=True)
    lines = [json.dumps({"text": f"doc about cars {i}", "label": "a" if i % 2 else "b"})
             for i in range(20)]
    lines.insert(6, deep_array(DEEP).decode())
    (channel / "data.jsonl").write_text("\n".join(lines) + "\n")
    result = run_train(env={"SM_ROOT": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    failure = (tmp_path / "output" / "failure").read_text()
    assert "data.jsonl:7" in failure and "nested more than 1024" in failure
    assert "Traceback" not in failure and len(failure) < 1000


def test_deep_hyperparameters_json_writes_a_short_failure_file(tmp_path: Path) -> None:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_bytes(deep_object(DEEP))
    result = run_train(env={"SM_ROOT": str(tmp_path)})
    assert result.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("HyperparameterError:") and "nested more than 1024" in failure
    assert "Traceback" not in failure and len(failure) < 1000


def test_deep_hyperparameter_values_are_refused() -> None:
    # SageMaker passes every value as a string, which is parsed as JSON.
    with pytest.raises(HyperparameterError):
        parse({"alpha": deep_array(DEEP).decode()})
    with pytest.raises(HyperparameterError):
        parse({"preset": '"' + deep_array(DEEP).decode()})


# --- the model directory of train ---------------------------------------------------------------


def test_train_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    target = tmp_path / "work"
    (target / "src").mkdir(parents=True)
    (target / "src" / "keep.py").write_text("precious")
    csv_path = write_tiny_csv(tmp_path / "d.csv")
    result = run_train("--data", str(csv_path), "--model-dir", str(target),
                       "--hyperparameters", json.dumps(TINY_HP))
    assert result.returncode == 1
    assert "does not hold a previous sm-text-pipeline model" in result.stderr
    assert (target / "src" / "keep.py").read_text() == "precious"
    with pytest.raises(model_dir.ModelDirError):  # a manifest does not make foreign files ours
        (target / MANIFEST).write_text(json.dumps({"schema_version": 1, "files": {}}))
        model_dir.check_model_dir(target)
    file_target = tmp_path / "a-file"
    file_target.write_text("x")
    with pytest.raises(model_dir.ModelDirError, match="not a directory"):
        model_dir.check_model_dir(file_target)


def test_train_replaces_a_previous_model(tmp_path: Path, tiny_trained) -> None:
    model = _copy(tiny_trained[0], tmp_path / "model")
    model_dir.check_model_dir(model)  # ours: may be replaced
    model_dir.check_model_dir(tmp_path / "new")  # missing: fine
    (tmp_path / "empty").mkdir()
    model_dir.check_model_dir(tmp_path / "empty")
    (model / "notes.txt").write_text("mine")
    with pytest.raises(model_dir.ModelDirError, match=r"notes\.txt"):
        model_dir.check_model_dir(model)


# --- training data messages --------------------------------------------------------------------


def test_invalid_utf8_in_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nfine,a\nalso fine,b\nbad \xff byte,a\n")
    with pytest.raises(data.DataError, match=r"d\.csv:4: not UTF-8"):
        data.load_table(path)


def test_unbalanced_quote_names_the_line_where_the_field_started(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    rows = [f"doc {i},a" for i in range(20)]
    rows[10] = '"unclosed doc,a'  # line 12 of the file
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(data.DataError, match=r"d\.csv:12: malformed CSV") as info:
        data.load_table(path)
    assert "unbalanced quote" in str(info.value)


@pytest.mark.parametrize("label", [{"a": 1}, [1, 2], True, None])
def test_jsonl_labels_must_be_strings_or_numbers(tmp_path: Path, label: object) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "x", "label": "a"}) + "\n"
                    + json.dumps({"text": "y", "label": label}) + "\n")
    with pytest.raises(data.DataError, match=r"d\.jsonl:2: "):
        data.load_table(path)


def test_tiny_data_sets_end_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"word{i} car", "label": "ab"[i % 2]}) + "\n"
                            for i in range(3)))
    with pytest.raises(data.DataError, match="too few to hold out"):
        train.run(str(path), tmp_path / "m", None, parse(TINY_HP))
    path.write_text("".join(json.dumps({"text": "the of and", "label": "ab"[i % 2]}) + "\n"
                            for i in range(8)))
    with pytest.raises(data.DataError, match="no vocabulary can be built"):
        train.run(str(path), tmp_path / "m", None, parse({**TINY_HP, "test_fraction": 0.5}))
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def run_train(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.train", *args], cwd=REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
