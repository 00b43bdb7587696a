"""The model directory training writes: refuse one holding someone else's files, empty ours."""

from __future__ import annotations

import shutil
from pathlib import Path

from serving import artifact
from serving.errors import ModelLoadError


class ModelDirError(ValueError):
    """A --model-dir that holds something other than a previous model of ours."""


def check_model_dir(directory: Path) -> None:
    """Refuse a model directory that training would have to destroy someone else's files in.

    It may be missing, empty (SageMaker's ``/opt/ml/model``), or hold a previous model of ours:
    a readable manifest and nothing but the entries a model has.
    """
    if not directory.exists() and not directory.is_symlink():
        return
    if not directory.is_dir():
        raise ModelDirError(f"model directory {directory} exists and is not a directory")
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return
    foreign = [name for name in entries if name not in artifact.MODEL_ENTRIES]
    try:
        artifact.read_manifest(directory)
        ours = True
    except ModelLoadError:
        ours = False
    if foreign or not ours:
        shown = ", ".join(repr(n) for n in (foreign or entries)[:5])
        raise ModelDirError(
            f"model directory {directory} is not empty and does not hold a previous "
            f"sm-text-pipeline model (it has {shown}{', ...' if len(foreign) > 5 else ''}); "
            "training would delete its contents, so it refuses: give an empty or new directory"
        )


def empty_dir(directory: Path) -> None:
    """Empty a directory :func:`check_model_dir` accepted (keep it: it may be a mount point)."""
    check_model_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
