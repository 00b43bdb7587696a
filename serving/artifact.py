"""The model artifact: one directory (→ ``model.tar.gz``) with a manifest of sha256s and versions.

Layout::

    manifest.json          schema, versions, sha256 of every file, data fingerprint, params
    metrics.json           test-split accuracy, macro-F1, ...
    classifier/            cleaner.json, vectorizer.json, vocab.txt, idf.npy,
                           log_prob.npy (float16 or float32, each term's row centred),
                           class_log_prior.npy, classes.json; the term index:
                           index_words.txt, index_unigram.npy, index_bigrams_*.npy and
                           wordhash_*.npy (hash tables: keys, values, offsets)
    ntm/                   cleaner.json, lemmas.json (the WordNet data its lemmatizer reads),
                           vectorizer.json, vocab.txt (the NTM vocabulary), the same term
                           index files
    catalog.jsonl          training-document index → id, title, newsgroup

Only JSON, text and ``.npy`` (``allow_pickle=False``) are read: loading runs no code from the
artifact, and every file's hash is checked before it is parsed.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from functools import cached_property
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from serving import digests, jsondoc
from serving.catalog import Catalog
from serving.classifier import TextClassifier
from serving.digests import sha256_file
from serving.errors import ModelLoadError
from serving.featurizer import NtmFeaturizer

SCHEMA_VERSION = 1
T = TypeVar("T")
MANIFEST = "manifest.json"
# Everything a model directory holds: training refuses to empty one that holds anything else.
PROBES = "selfcheck.jsonl"  # texts for the deploy-time self-check (scripts/selfcheck.py)
# What a model directory of ours holds.
MODEL_ENTRIES = frozenset({MANIFEST, "metrics.json", "classifier", "ntm", "catalog.jsonl",
                           "evaluation", PROBES})
MAX_MANIFEST_BYTES = 1 << 20  # ours are a few KB (the classes and hyper-parameters)


def runtime_versions() -> dict[str, str]:
    # From package metadata: importing nltk itself costs ~2 s of start-up.
    return {"python": platform.python_version(),
            **{name: version(name) for name in ("numpy", "scipy", "scikit-learn", "nltk")}}


def _release(version: str, parts: int) -> tuple[str, ...]:
    return tuple(version.split(".")[:parts])


def check_versions(recorded: dict[str, str]) -> list[str]:
    """Differences that make an artifact unsafe to serve here (empty when compatible)."""
    current = runtime_versions()
    rules = {"python": 2, "numpy": 1, "scikit-learn": 2, "nltk": 1}
    problems = []
    for name, parts in rules.items():
        have, want = current[name], str(recorded.get(name, "?"))
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


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The parsed manifest (size capped, nesting guarded); ModelLoadError if unusable."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {MANIFEST}; is this a sm-text-pipeline model?")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ModelLoadError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; not a manifest "
                             "this project writes")
    try:
        manifest = jsondoc.loads(raw, str(path))
    except jsondoc.JSONError as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc.message})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) \
            or not manifest["files"]:
        raise ModelLoadError(f"{path}: not a manifest (expected an object with a files object "
                             "listing the model's files)")
    return manifest


def confined(model_dir: Path, name: object) -> Path:
    """``model_dir / name`` if ``name`` is a relative path that stays inside ``model_dir``
    (no ``..``, no absolute path, no symlink leading out); ModelLoadError otherwise."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ModelLoadError(f"{model_dir}: the manifest lists a file name that is not a path")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise ModelLoadError(f"{model_dir}: the manifest path {name[:80]!r} leaves the model "
                             "directory; refusing to load")
    path = model_dir / relative
    root = model_dir.resolve()
    try:
        inside = path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise ModelLoadError(f"{model_dir}: {name[:80]!r} is a link out of the model directory; "
                             "refusing to load")
    return path


def verify(model_dir: Path) -> dict[str, Any]:
    """Read the manifest, check schema, versions and every file's sha256; return the manifest."""
    path = model_dir / MANIFEST
    manifest = read_manifest(model_dir)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ModelLoadError(
            f"{path}: schema_version {str(manifest.get('schema_version'))[:40]!r}, this server "
            f"reads {SCHEMA_VERSION}; retrain the model with this image"
        )
    versions = manifest.get("versions", {})
    problems = check_versions(versions if isinstance(versions, dict) else {})
    if problems:
        raise ModelLoadError(
            f"{model_dir}: built with incompatible versions ({'; '.join(problems)}); "
            "retrain with this image or serve it with the image that trained it"
        )
    listed = manifest["files"]
    for name, expected in listed.items():
        file = confined(model_dir, name)
        if not file.is_file():
            raise ModelLoadError(f"{model_dir}: {name} is listed in the manifest but missing")
        if digests.sha256(file) != expected:  # prefetched during start-up (serving.serve)
            raise ModelLoadError(
                f"{model_dir}: {name} does not match its sha256 in the manifest "
                "(corrupted or tampered with); refusing to load"
            )
    extra = unlisted(model_dir, listed)
    if extra:
        raise ModelLoadError(f"{model_dir}: {extra[0]} is not in the manifest (added or renamed "
                             "after training?); refusing to load it unchecked")
    return manifest


def unlisted(model_dir: Path, listed: dict[str, Any]) -> list[str]:
    """Files of the model's own parts (MODEL_ENTRIES: what the server may open) that the
    manifest does not list; anything else in the directory (an SDK's ``code/``) is not ours."""
    found = []
    for entry in sorted(MODEL_ENTRIES - {MANIFEST}):
        path = model_dir / entry
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else \
            [path] if path.is_file() else []
        found += [name for p in files if (name := p.relative_to(model_dir).as_posix())
                  not in listed]
    return found


class Model:
    """A verified artifact; each part is loaded on first use, so a stage loads only what it
    serves (``classify`` never loads WordNet, ``recommend`` only the catalog). The server
    touches its stage's parts before the workers fork, so they are loaded once and shared."""

    def __init__(self, model_dir: Path, manifest: dict[str, Any]) -> None:
        self.model_dir = model_dir
        self.manifest = manifest

    @property
    def num_topics(self) -> int | None:
        ntm = self.manifest.get("ntm")
        value = ntm.get("num_topics") if isinstance(ntm, dict) else None
        return int(value) if isinstance(value, int) and value > 0 else None

    def _load(self, what: str, loader: Callable[[Path], T], name: str) -> T:
        try:
            return loader(self.model_dir / name)
        except Exception as exc:  # numpy's EOFError for an empty .npy, or anything else
            raise ModelLoadError(f"{self.model_dir}: cannot load the {what} "
                                 f"({type(exc).__name__}: {exc})") from exc

    @cached_property
    def classifier(self) -> TextClassifier:
        return self._load("classifier", TextClassifier.load, "classifier")

    @cached_property
    def featurizer(self) -> NtmFeaturizer:
        return self._load("NTM featurizer", NtmFeaturizer.load, "ntm")

    @cached_property
    def catalog(self) -> Catalog:
        return self._load("catalog", Catalog.load, "catalog.jsonl")

    @classmethod
    def load(cls, model_dir: str | Path) -> Model:
        """Verify the artifact (manifest, versions, every sha256); parts load lazily."""
        model_dir = Path(model_dir)
        return cls(model_dir, verify(model_dir))
