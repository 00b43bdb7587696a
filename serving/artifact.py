"""The model artifact: one directory (→ ``model.tar.gz``) with a manifest of sha256s and versions.

Layout::

    manifest.json          schema, versions, sha256 of every file, data fingerprint, params
    metrics.json           test-split accuracy, macro-F1, ...
    classifier/            cleaner.json, vectorizer.json, vocab.txt, idf.npy,
                           log_prob.npy, class_log_prior.npy, classes.json
    ntm/                   cleaner.json, vectorizer.json, vocab.txt (the NTM vocabulary)
    catalog.jsonl          training-document index → id, title, newsgroup

Only JSON, text and ``.npy`` (``allow_pickle=False``) are read: loading runs no code from the
artifact, and every file's hash is checked before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nltk
import numpy as np
import scipy
import sklearn

from serving.catalog import Catalog
from serving.classifier import TextClassifier
from serving.errors import ModelLoadError
from serving.featurizer import NtmFeaturizer

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def runtime_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "nltk": nltk.__version__,
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _release(version: str, parts: int) -> tuple[str, ...]:
    return tuple(version.split(".")[:parts])


def check_versions(recorded: dict[str, str]) -> list[str]:
    """Differences that make an artifact unsafe to serve here (empty when compatible)."""
    current = runtime_versions()
    rules = {"python": 2, "numpy": 1, "scikit-learn": 2, "nltk": 1}
    problems = []
    for name, parts in rules.items():
        have, want = current[name], recorded.get(name, "?")
        if _release(have, parts) != _release(want, parts):
            problems.append(f"{name} {want} (artifact) vs {have} (here)")
    return problems


def write_manifest(model_dir: Path, *, extra: dict[str, Any]) -> Path:
    files = sorted(
        p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST
    )
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": runtime_versions(),
        "files": {p.relative_to(model_dir).as_posix(): sha256_file(p) for p in files},
        **extra,
    }
    path = model_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return path


def verify(model_dir: Path) -> dict[str, Any]:
    """Read the manifest, check schema, versions and every file's sha256; return the manifest."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {MANIFEST}; is this a sm-text-pipeline model?")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ModelLoadError(
            f"{path}: schema_version {manifest.get('schema_version')!r}, this server reads "
            f"{SCHEMA_VERSION}; retrain the model with this image"
        )
    problems = check_versions(manifest.get("versions", {}))
    if problems:
        raise ModelLoadError(
            f"{model_dir}: built with incompatible versions ({'; '.join(problems)}); "
            "retrain with this image or serve it with the image that trained it"
        )
    for name, expected in manifest.get("files", {}).items():
        file = model_dir / name
        if not file.is_file():
            raise ModelLoadError(f"{model_dir}: {name} is listed in the manifest but missing")
        if sha256_file(file) != expected:
            raise ModelLoadError(
                f"{model_dir}: {name} does not match its sha256 in the manifest "
                "(corrupted or tampered with); refusing to load"
            )
    return manifest


@dataclass
class Model:
    """Everything the server needs, loaded once."""

    manifest: dict[str, Any]
    classifier: TextClassifier
    featurizer: NtmFeaturizer
    catalog: Catalog

    @property
    def num_topics(self) -> int | None:
        value = self.manifest.get("ntm", {}).get("num_topics")
        return int(value) if value else None

    @classmethod
    def load(cls, model_dir: str | Path) -> Model:
        model_dir = Path(model_dir)
        manifest = verify(model_dir)
        try:
            return cls(
                manifest=manifest,
                classifier=TextClassifier.load(model_dir / "classifier"),
                featurizer=NtmFeaturizer.load(model_dir / "ntm"),
                catalog=Catalog.load(model_dir / "catalog.jsonl"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{model_dir}: cannot load the model ({exc})") from exc
