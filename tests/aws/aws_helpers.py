"""Small helpers for the AWS tests (a module, so test files can import them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import stack_checks  # noqa: E402  (re-exported for the AWS tests)

docker_ok = stack_checks.docker_answers


def outputs(text: str) -> dict[str, str]:
    """The KEY=value result lines a script printed."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.isupper()}


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `python scripts/<name>.py ARGS` as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
        check=False,
    )
