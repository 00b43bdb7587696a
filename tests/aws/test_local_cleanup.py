"""scripts/localsm/cleanup.py: the runtime removes exactly the image references its pulls made.

Real Docker, no registry: a one-file image built here stands for a pulled image; the runtime's
record is written as `Deployer.pull` writes it (only for a reference absent before the pull).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localsm.cleanup import PULLED, image_present, record_pull, sweep

pytestmark = pytest.mark.docker


@pytest.fixture
def scratch_image(docker_available: None, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "f.txt").write_text(f"{uuid.uuid4()}\n")  # an image of its own
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY f.txt /f.txt\n")
    name = f"sm-text-pipeline-cleanup-test:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-q", "-t", name, str(tmp_path / "ctx")],
                   check=True, capture_output=True)  # fmt: skip
    yield name
    subprocess.run(["docker", "image", "rm", name], capture_output=True, check=False)


def tag(source: str, ref: str) -> str:
    subprocess.run(["docker", "tag", source, ref], check=True, capture_output=True)
    return ref


def test_sweep_untags_what_the_runtime_pulled_and_nothing_else(
    scratch_image: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    suffix = uuid.uuid4().hex[:8]
    pulled = f"127.0.0.1:1/cleanup-test-{suffix}:1"
    assert not image_present(pulled)
    record_pull(work, tag(scratch_image, pulled))
    record_pull(work, pulled)  # a second pull of the same reference: recorded once more
    untouched = tag(scratch_image, f"127.0.0.1:1/cleanup-test-{suffix}:mine")
    try:
        assert sweep(work) == 0  # no containers
        assert not image_present(pulled)
        assert image_present(untouched) and image_present(scratch_image)
        assert not (work / PULLED).exists()
        assert sweep(work) == 0  # nothing left to do, no error
    finally:
        subprocess.run(["docker", "image", "rm", pulled, untouched], capture_output=True)
