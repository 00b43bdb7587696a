"""What the Docker-backed stacks (tests/aws/transform_stack.py, tests/e2e/e2e_stack.py) need
before they start, as one reason to skip or None."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def docker_answers() -> bool:
    """A Docker daemon answers ``docker info`` within 30 s."""
    if not shutil.which("docker"):
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def missing_prerequisite(image: str, data_archive: Path | None = None) -> str | None:
    """Why a stack of moto + Debian's registry + ``image`` cannot run here, or None."""
    if data_archive is not None and not data_archive.exists():
        return f"the 20 Newsgroups archive is not at {data_archive}"
    if not (shutil.which("docker-registry") and shutil.which("htpasswd")):
        return "Debian's docker-registry and htpasswd (apache2-utils) are not installed"
    if not docker_answers():
        return "no Docker daemon answers (bash scripts/start_dockerd.sh)"
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"image {image} is not built (bash scripts/build_image.sh)"
    return None
