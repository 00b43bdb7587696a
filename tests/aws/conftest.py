"""AWS workflow tests: moto (server mode) and Debian's docker-registry on 127.0.0.1.

`scripts/localsm/aws.py` starts both (once per session, in a temporary work dir, on free ports);
tests point plain boto3 at them through AWS_ENDPOINT_URL and fake credentials, region us-east-1,
exactly what a developer gets from `eval "$(python scripts/localsm/aws.py env)"`.

What moto cannot show (said again in the tests that meet it, and in docs/aws.md): it drops
InferenceExecutionConfig, has every endpoint InService at once, completes training and transform
jobs at once without running or writing anything, and answers invoke_endpoint with canned data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import docker_ok

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LOCAL_AWS = [sys.executable, str(REPO / "scripts" / "localsm" / "aws.py")]
HAVE_REGISTRY = bool(shutil.which("docker-registry") and shutil.which("htpasswd"))


def run_local_aws(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCAL_AWS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """moto + registry for the whole session; stopped (by the PIDs it wrote) at the end."""
    work = tmp_path_factory.mktemp("local_aws")
    extra = [] if HAVE_REGISTRY else ["--no-registry"]
    started = run_local_aws("start", "--work-dir", str(work), *extra)
    if started.returncode != 0:
        run_local_aws("stop", "--work-dir", str(work))
        pytest.fail(f"local_aws start failed:\n{started.stderr}")
    env = json.loads(run_local_aws("env", "--work-dir", str(work), "--format", "json").stdout)
    try:
        yield {"env": env, "work": work}
    finally:
        run_local_aws("stop", "--work-dir", str(work))


@pytest.fixture
def aws_env(local_aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment pointed at moto, and nothing else of AWS's."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var in {
            "SAGEMAKER_ROLE_ARN",
            "IMAGE_URI",
            "ECR_REGISTRY_HOST",
        }:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = {k: v for k, v in local_aws["env"].items() if k.startswith("AWS_")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return dict(local_aws["env"])


@pytest.fixture
def boto(aws_env: dict[str, str]) -> Any:
    """A client factory for assertions (plain boto3, same environment as the scripts)."""
    import boto3

    session = boto3.Session()
    return session.client


@pytest.fixture
def role_arn(boto: Any) -> str:
    iam = boto("iam")
    try:
        return str(iam.get_role(RoleName="sm-text-test")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sagemaker.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        created = iam.create_role(
            RoleName="sm-text-test", AssumeRolePolicyDocument=json.dumps(trust)
        )
        return str(created["Role"]["Arn"])


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any]]]:
    """Every AWS API call made in this process: (service, operation, parameters)."""
    from botocore.client import BaseClient

    calls: list[tuple[str, str, dict[str, Any]]] = []
    original = BaseClient._make_api_call

    def recording(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((self.meta.service_model.service_name, operation, params))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


@pytest.fixture
def no_network_no_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail on any HTTP request botocore would send and on any external command."""
    import subprocess as sp

    from botocore.endpoint import Endpoint

    attempts: list[str] = []

    def refuse_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"http {self.host}")
        raise AssertionError(f"a dry run sent a request to {self.host}")

    def refuse_command(cmd: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"command {cmd}")
        raise AssertionError(f"a dry run ran {cmd}")

    monkeypatch.setattr(Endpoint, "make_request", refuse_request)
    monkeypatch.setattr(sp, "run", refuse_command)
    monkeypatch.setattr(sp, "Popen", refuse_command)
    return attempts


@pytest.fixture(scope="session")
def docker_available() -> None:
    if not docker_ok():
        pytest.skip("no Docker daemon answers (bash scripts/start_dockerd.sh)")


@pytest.fixture
def registry(local_aws: dict[str, Any]) -> dict[str, Any]:
    if not HAVE_REGISTRY:
        pytest.skip("Debian's docker-registry and htpasswd (apache2-utils) are not installed")
    env = local_aws["env"]
    return {"host": env["ECR_REGISTRY_HOST"], "log": local_aws["work"] / "registry.log"}


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty docker CLI config: no credentials from the machine's own ~/.docker."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path
