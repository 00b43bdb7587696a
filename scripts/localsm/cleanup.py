"""What the local runtime leaves in Docker, and its removal: containers and pulled image tags.

Each runtime (one per work dir, `runtime_id`) labels its containers, and records every image
reference it pulled that was not there before (`127.0.0.1:<registry port>/<repo>:<tag>`) in
<work>/runtime-pulled.txt. `sweep` removes both, by label and by exact reference, nothing else:
an image the user (or ecr_push.py) tagged before the pull stays. Called by the runtime when it
stops, by `aws.py stop`, and by `aws.py start --runtime` (what a runtime that died left).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path

LABEL = "sm-text-pipeline.local-runtime"
PULLED = "runtime-pulled.txt"
_record_lock = threading.Lock()


def runtime_id(work: Path) -> str:
    return hashlib.sha256(str(work.resolve()).encode()).hexdigest()[:12]


def image_present(ref: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode == 0


def record_pull(work: Path, ref: str) -> None:
    """Note a reference this runtime's pull created, for `sweep` to untag."""
    with _record_lock, (work / PULLED).open("a") as out:
        out.write(ref + "\n")


def sweep(work: Path) -> int:
    """Remove this work dir's runtime containers (by label), then the image references its pulls
    created (by exact reference: an untag; the image goes only when no other tag holds it).
    Returns how many containers were removed."""
    if not shutil.which("docker"):
        return 0
    label = f"label={LABEL}={runtime_id(work)}"
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=False
    ).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)
    record = work / PULLED
    with _record_lock:
        refs = sorted(set(record.read_text().split())) if record.is_file() else []
        if refs:
            subprocess.run(["docker", "image", "rm", *refs], capture_output=True, check=False)
        record.unlink(missing_ok=True)
    return len(found)
