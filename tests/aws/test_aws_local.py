"""scripts/localsm/aws.py: start/stop/status/env, idempotent start, stop kills only its own PIDs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from aws_helpers import REPO

pytestmark = pytest.mark.aws

LOCAL_AWS = [sys.executable, str(REPO / "scripts" / "localsm" / "aws.py")]


def local_aws(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCAL_AWS, *args, "--work-dir", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_env_points_plain_boto3_at_moto(aws_env: dict[str, str], boto: Any) -> None:
    assert aws_env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert aws_env["AWS_REGION"] == "us-east-1"
    identity = boto("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"  # moto's account: proof we reached moto


def test_registry_password_is_the_ecr_token(aws_env: dict[str, str], boto: Any) -> None:
    if "ECR_REGISTRY_HOST" not in aws_env:
        pytest.skip("docker-registry / htpasswd not installed")
    url = f"http://{aws_env['ECR_REGISTRY_HOST']}/v2/"
    token = boto("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=(user, "wrong"), timeout=5).status_code == 401
    assert requests.get(url, auth=(user, password), timeout=5).status_code == 200


def test_start_is_idempotent_and_stop_kills_only_its_pids(tmp_path: Path) -> None:
    work = tmp_path / "la"
    first = local_aws(work, "start", "--no-registry")
    assert first.returncode == 0, first.stderr
    state = json.loads((work / "state.json").read_text())
    moto = state["components"]["moto"]
    assert (work / "moto.pid").read_text().strip() == str(moto["pid"])
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in first.stdout

    again = local_aws(work, "start", "--no-registry")
    assert again.returncode == 0 and "already running" in again.stderr
    assert json.loads((work / "state.json").read_text()) == state
    assert local_aws(work, "status").returncode == 0

    # A process this command did not start, under a PID its state claims: stop must spare it.
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state["components"]["decoy"] = {"pid": decoy.pid, "port": 1, "marker": "moto_shims.py"}
        (work / "state.json").write_text(json.dumps(state))
        stopped = local_aws(work, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert decoy.poll() is None, "stop killed a process it did not start"
    finally:
        decoy.kill()
        decoy.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{moto['pid']}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{moto['pid']}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if status == "Z":
            break
        time.sleep(0.1)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{moto['port']}/moto-api/", timeout=2)
    assert not (work / "state.json").exists() and not (work / "moto.pid").exists()
    assert local_aws(work, "status").returncode == 3
    assert local_aws(work, "env").returncode == 1
