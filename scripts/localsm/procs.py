"""The local stack's processes and state: spawn, watch and record what `aws.py` starts.

Shared by `aws.py` (starts and stops the stack) and `runtime.py` (spawned by it; logs in to the
registry with moto's ECR password), so neither imports the other.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from scripts.aws_common import log

REGION = "us-east-1"
FAKE_KEY = "testing"


class LocalAwsError(Exception):
    pass


say = partial(log, who="localsm")  # the stack's progress lines: [localsm HH:MM:SS] ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, marker: str) -> bool:
    """True when PID runs and its command line contains marker (guards against PID reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and marker in cmdline


def load_state(work: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((work / "state.json").read_text()))
    except (OSError, ValueError):
        return {"components": {}}


def save_state(work: Path, state: dict[str, Any]) -> None:
    tmp = work / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(work / "state.json")


def spawn(
    work: Path, name: str, cmd: list[str], port: int, marker: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    log = (work / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    (work / f"{name}.pid").write_text(f"{proc.pid}\n")
    say(f"started {name} pid {proc.pid} on 127.0.0.1:{port} (log {work / f'{name}.log'})")
    return proc, {"pid": proc.pid, "port": port, "marker": marker, "cmd": cmd}


def wait_until(check: Any, what: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise LocalAwsError(f"{what} exited during start-up; see its log")
        time.sleep(0.2)
    raise LocalAwsError(f"{what} did not answer within {timeout:.0f} s; see its log")


def moto_ecr_password(moto_port: int) -> str:
    """The password moto's ecr.get_authorization_token hands out (base64 'AWS:<password>')."""
    import boto3

    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{moto_port}",
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_KEY,
    )
    token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    if user != "AWS" or not password:
        raise LocalAwsError("unexpected ECR authorization token from moto")
    return password
