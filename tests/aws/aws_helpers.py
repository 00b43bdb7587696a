"""Small helpers for the AWS tests (a module, so test files can import them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import stack_checks  # noqa: E402  (re-exported for the AWS tests)

docker_ok = stack_checks.docker_answers


def no_aws_config(monkeypatch: Any, *extra: str) -> None:
    """No AWS account, config, credentials or endpoint reachable: AWS_* (and ``extra``)
    unset, nothing listening at the endpoint URL."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var in {"SAGEMAKER_ROLE_ARN", "IMAGE_URI", *extra}:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_REGION", "eu-west-1")


def run_endpoints(capsys: Any, *argv: str, code: int = 0) -> dict[str, str]:
    """``endpoints.py ARGV`` in-process: its KEY=value outputs and stderr (as ``_err``)."""
    from scripts import endpoints

    got = endpoints.main(list(argv))
    captured = capsys.readouterr()
    assert got == code, captured.err
    return {**outputs(captured.out), "_err": captured.err}


def sent(calls: list[tuple[str, str, dict[str, Any]]], operation: str) -> list[dict[str, Any]]:
    """The parameters of each recorded call of ``operation``."""
    return [params for _, op, params in calls if op == operation]


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
