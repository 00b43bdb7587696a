import json
import shutil
from pathlib import Path

import pytest

from serving import artifact
from serving.artifact import Model
from serving.errors import ModelLoadError


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_loads_and_lists_every_file(model_copy: Path) -> None:
    model = Model.load(model_copy)
    files = model.manifest["files"]
    on_disk = {p.relative_to(model_copy).as_posix() for p in model_copy.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(files) == on_disk
    assert {"python", "numpy", "scikit-learn", "nltk"} <= set(model.manifest["versions"])
    assert model.manifest["training_data"]["fingerprint"]
    assert model.manifest["hyperparameters"]["alpha"] > 0
    assert json.loads((model_copy / "metrics.json").read_text())["accuracy"] > 0.5


def test_flipped_byte_is_refused(model_copy: Path) -> None:
    target = model_copy / "classifier" / "log_prob.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"classifier/log_prob.npy does not match its sha256"):
        Model.load(model_copy)


def test_missing_file_and_manifest(model_copy: Path) -> None:
    (model_copy / "catalog.jsonl").unlink()
    with pytest.raises(ModelLoadError, match=r"catalog\.jsonl is listed .* but missing"):
        Model.load(model_copy)
    (model_copy / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no manifest\.json"):
        Model.load(model_copy)


def test_version_mismatch_is_refused(model_copy: Path) -> None:
    path = model_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["versions"]["scikit-learn"] = "0.24.2"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"scikit-learn 0.24.2 \(artifact\)"):
        Model.load(model_copy)
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="schema_version"):
        Model.load(model_copy)


def test_no_pickles_in_the_artifact(model_copy: Path) -> None:
    suffixes = {p.suffix for p in model_copy.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".txt", ".npy", ".jsonl"}
    assert artifact.check_versions(artifact.runtime_versions()) == []


def _rewrite_manifest(model_dir: Path, change) -> None:
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("change", [lambda m: m.pop("files"), lambda m: m.update(files={})])
def test_a_manifest_that_lists_no_files_is_refused(model_copy: Path, change) -> None:
    _rewrite_manifest(model_copy, change)
    with pytest.raises(ModelLoadError, match="not a manifest"):
        Model.load(model_copy)


def test_a_file_of_the_model_missing_from_the_manifest_is_refused(model_copy: Path) -> None:
    _rewrite_manifest(model_copy, lambda m: m["files"].pop("classifier/log_prob.npy"))
    with pytest.raises(ModelLoadError, match=r"classifier/log_prob\.npy is not in the manifest"):
        Model.load(model_copy)


def test_files_outside_the_models_parts_are_not_ours(model_copy: Path) -> None:
    (model_copy / "code").mkdir()
    (model_copy / "code" / "inference.py").write_text("# an SDK's repacked entry point\n")
    (model_copy / "classifier" / "notes.txt").write_text("added later\n")
    with pytest.raises(ModelLoadError, match=r"classifier/notes\.txt is not in the manifest"):
        Model.load(model_copy)
    (model_copy / "classifier" / "notes.txt").unlink()
    assert Model.load(model_copy).classifier is not None


def test_an_empty_npy_with_its_hash_is_a_load_error(model_copy: Path) -> None:
    from serving.digests import sha256_file

    target = model_copy / "classifier" / "class_log_prior.npy"
    target.write_bytes(b"")
    _rewrite_manifest(model_copy, lambda m: m["files"].update(
        {"classifier/class_log_prior.npy": sha256_file(target)}))
    model = Model.load(model_copy)
    with pytest.raises(ModelLoadError, match=r"cannot load the classifier \(EOFError"):
        _ = model.classifier


def test_a_non_finite_prior_with_its_hash_is_a_load_error(model_copy: Path) -> None:
    import numpy as np

    from serving.digests import sha256_file

    target = model_copy / "classifier" / "class_log_prior.npy"
    prior = np.load(target)
    prior[0] = np.nan
    np.save(target, prior)
    _rewrite_manifest(model_copy, lambda m: m["files"].update(
        {"classifier/class_log_prior.npy": sha256_file(target)}))
    with pytest.raises(ModelLoadError, match=r"class_log_prior\.npy holds NaN"):
        _ = Model.load(model_copy).classifier
