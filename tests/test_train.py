import json
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from serving import shards
from serving.artifact import Model
from tests.conftest import DATA_TGZ, REPO, TINY_HP, need_real_data, write_tiny_csv


def run_train(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.train", *args], cwd=REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)


def test_outputs_of_training(tiny_trained: tuple[Path, Path], tiny_corpus: Path) -> None:
    model_dir, output_dir = tiny_trained
    ntm = output_dir / "ntm"
    info = json.loads((ntm / "ntm_data.json").read_text())
    vocab = (ntm / "auxiliary" / "vocab.txt").read_text().splitlines()
    assert len(vocab) == info["feature_dim"] == Model.load(model_dir).featurizer.feature_dim
    parts = sorted((ntm / "train").glob("train_part*.pbr"))
    assert len(parts) == TINY_HP["ntm_parts"]
    X = shards.read_sparse_shards(parts, info["feature_dim"])
    model = Model.load(model_dir)
    catalog_lines = (ntm / "catalog.jsonl").read_text().splitlines()
    assert X.shape == (len(catalog_lines), info["feature_dim"]) == (len(model.catalog), len(vocab))
    assert X.dtype == np.float32 and (X.data > 0).all()
    # record i of the shards is catalog document i, counted by the served featurizer
    from serving.data import load_splits

    train = load_splits(str(tiny_corpus)).train
    assert model.catalog.ids == train.ids
    expected = model.featurizer.transform(train.texts)
    assert (expected != X).nnz == 0
    report = output_dir / "evaluation"
    svg = ElementTree.parse(report / "confusion_matrix.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert not (report / "confusion_matrix.png").exists()
    assert "precision" in (report / "classification_report.txt").read_text()
    assert json.loads((report / "metrics.json").read_text())["per_class"]


def test_cli_with_csv_and_holdout(tmp_path: Path) -> None:
    data = write_tiny_csv(tmp_path / "train.csv")
    result = run_train("--data", str(data), "--model-dir", str(tmp_path / "m"),
                       "--hyperparameters", json.dumps({**TINY_HP, "test_fraction": 0.25}))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["n_test"] == 20 and metrics["accuracy"] > 0.8
    assert (tmp_path / "m" / "evaluation" / "metrics.json").exists()
    assert not (tmp_path / "m" / "evaluation" / "evaluation").exists()


def _sagemaker_layout(root: Path, corpus: Path, hp: dict) -> None:
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    (root / "input" / "data").mkdir(parents=True)
    os.symlink(corpus / "tiny-train", root / "input" / "data" / "train")
    os.symlink(corpus / "tiny-test", root / "input" / "data" / "test")


def test_sagemaker_contract(tmp_path: Path, tiny_corpus: Path) -> None:
    hp = {k: json.dumps(v) for k, v in TINY_HP.items()}  # framework-style encoded strings
    _sagemaker_layout(tmp_path, tiny_corpus, hp)
    result = run_train(env={"SM_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert Model.load(tmp_path / "model").manifest["training_data"]["n_test"] == 40
    assert list((tmp_path / "output" / "data" / "ntm" / "train").glob("*.pbr"))
    assert not (tmp_path / "output" / "failure").exists()


def test_sagemaker_failure_file(tmp_path: Path, tiny_corpus: Path) -> None:
    _sagemaker_layout(tmp_path, tiny_corpus, {"alpha": "-3"})
    result = run_train(env={"SM_ROOT": str(tmp_path)})
    assert result.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("HyperparameterError: hyper-parameter alpha=-3")
    assert "Traceback" not in failure


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    result = run_train("--data", str(tmp_path / "nope"), "--model-dir", str(tmp_path / "m"))
    assert result.returncode == 1 and "no such file or directory" in result.stderr


@pytest.mark.data
@pytest.mark.slow
def test_full_training_meets_targets(tmp_path: Path) -> None:
    need_real_data()
    started = time.perf_counter()
    result = run_train("--data", str(DATA_TGZ), "--model-dir", str(tmp_path / "m"),
                       "--output-data-dir", str(tmp_path / "o"))
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.85, metrics
    print(f"full training: {seconds:.1f} s, accuracy {metrics['accuracy']:.4f}")
    info = json.loads((tmp_path / "o" / "ntm" / "ntm_data.json").read_text())
    vocab = (tmp_path / "o" / "ntm" / "auxiliary" / "vocab.txt").read_text().splitlines()
    assert len(vocab) == info["feature_dim"] == 2000
    X = shards.read_sparse_shards(sorted((tmp_path / "o" / "ntm" / "train").glob("*.pbr")),
                                    2000)
    assert X.shape == (11314, 2000)


@pytest.mark.data
@pytest.mark.slow
def test_tutorial_preset_reproduces_the_published_figure(tmp_path: Path) -> None:
    need_real_data()
    result = run_train("--data", str(DATA_TGZ), "--model-dir", str(tmp_path / "m"),
                       "--preset", "tutorial")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["accuracy"] == 0.8187732342007435
    assert metrics["macro_f1"] == pytest.approx(0.8118865539222201, abs=1e-12)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["classifier"]["n_features"] == 85964
