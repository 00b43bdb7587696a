"""Local stand-ins for AWS on 127.0.0.1: moto (control plane) and a registry with ECR-style login.

    python scripts/localsm/aws.py start            # idempotent; then prints the settings
    eval "$(python scripts/localsm/aws.py env)"    # point AWS_ENDPOINT_URL etc. at them
    python scripts/localsm/aws.py status           # exit 0 when everything runs, 3 otherwise
    python scripts/localsm/aws.py stop             # stops only the PIDs it started

Components:
  moto      moto's server (scripts/localsm/moto_shims.py: moto + UpdateEndpoint) serving
            SageMaker, ECR, S3, STS, IAM, Application Auto Scaling on one port.
  registry  Debian's docker-registry (distribution 2.8) with htpasswd auth: user AWS, password
            = what moto's ecr.get_authorization_token hands out, so the real
            get_authorization_token -> docker login --password-stdin -> push flow runs.

Files under --work-dir (default .work/local_aws, or $LOCAL_AWS_DIR): state.json, <name>.pid,
<name>.log, registry/ (config, htpasswd, image data; wiped on a fresh start and on stop).
Ports: --moto-port / --registry-port ($LOCAL_AWS_MOTO_PORT / $LOCAL_AWS_REGISTRY_PORT); 0, the
default, picks a free port. Credentials printed by `env` are fake (testing/testing).
  runtime   with `start --runtime`: scripts/localsm/runtime.py, the SageMaker runtime moto lacks
            (InvokeEndpoint runs the endpoint's containers, transform jobs created in moto run
            to the end; `env` adds AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME). Port: --runtime-port
            ($LOCAL_AWS_RUNTIME_PORT).
            `stop` also removes any container it left (by its label, nothing else) and the
            image references its pulls created (by exact reference: localsm/cleanup.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/

from scripts.aws_cli import make_parser
from scripts.localsm.cleanup import sweep
from scripts.localsm.procs import (
    FAKE_KEY,
    REGION,
    LocalAwsError,
    free_port,
    http_status,
    load_state,
    moto_ecr_password,
    pid_alive,
    save_state,
    say,
    spawn,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / ".work" / "local_aws"
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: local-ecr
    path: {htpasswd}
"""


def start_moto(work: Path, port: int, state: dict[str, Any], timeout: float) -> int:
    shim = str(Path(__file__).with_name("moto_shims.py"))
    cmd = [sys.executable, shim, "--host", "127.0.0.1", "--port", str(port)]
    proc, state["components"]["moto"] = spawn(work, "moto", cmd, port, marker=shim)
    save_state(work, state)
    url = f"http://127.0.0.1:{port}/moto-api/"
    wait_until(lambda: http_status(url) == 200, "moto", proc, timeout)
    return port


def start_registry(
    work: Path, port: int, password: str, state: dict[str, Any], timeout: float
) -> None:
    for tool, package in (("docker-registry", "docker-registry"), ("htpasswd", "apache2-utils")):
        if not shutil.which(tool):
            raise LocalAwsError(f"{tool} not found: install Debian's {package} (scripts/setup.sh)")
    reg = work / "registry"
    shutil.rmtree(reg, ignore_errors=True)
    (reg / "data").mkdir(parents=True)
    hashed = subprocess.run(
        ["htpasswd", "-niB", "AWS"], input=password, capture_output=True, text=True, check=True
    ).stdout.strip()
    htpasswd = reg / "htpasswd"
    htpasswd.write_text(hashed + "\n")
    htpasswd.chmod(0o600)
    config = reg / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=reg / "data", port=port, htpasswd=htpasswd))
    cmd = ["docker-registry", "serve", str(config)]
    proc, state["components"]["registry"] = spawn(work, "registry", cmd, port, str(config))
    save_state(work, state)
    url = f"http://127.0.0.1:{port}/v2/"
    wait_until(lambda: http_status(url) == 401, "docker-registry", proc, timeout)


def start_runtime(work: Path, port: int, state: dict[str, Any], timeout: float) -> None:
    if "registry" not in state["components"]:
        raise LocalAwsError(
            "the runtime pulls images from the registry: start without --no-registry"
        )
    sweep(work)  # what a runtime that died left
    port = port or free_port()
    components = state["components"]
    script = str(Path(__file__).with_name("runtime.py"))
    cmd = [sys.executable, script, "serve", "--work-dir", str(work), "--port", str(port)]
    cmd += ["--moto-port", str(components["moto"]["port"])]
    cmd += ["--registry-host", f"127.0.0.1:{components['registry']['port']}"]
    proc, components["runtime"] = spawn(work, "runtime", cmd, port, marker=script)
    save_state(work, state)
    url = f"http://127.0.0.1:{port}/_local/health"
    wait_until(lambda: http_status(url) == 200, "runtime", proc, timeout)


def running(state: dict[str, Any]) -> dict[str, bool]:
    return {
        name: pid_alive(int(entry["pid"]), str(entry["marker"]))
        for name, entry in state.get("components", {}).items()
    }


def stop(work: Path) -> int:
    state = load_state(work)
    components = state.get("components", {})
    for name in sorted(components, key=lambda n: n != "runtime"):  # runtime first: it cleans up
        entry = components[name]
        pid, marker = int(entry["pid"]), str(entry["marker"])
        if pid_alive(pid, marker):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + (60 if name == "runtime" else 10)
            while pid_alive(pid, marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid, marker):
                os.kill(pid, signal.SIGKILL)
            say(f"stopped {name} (pid {pid})")
        (work / f"{name}.pid").unlink(missing_ok=True)
    if "runtime" in components:
        if removed := sweep(work):
            say(f"removed {removed} containers the runtime left")
        for folder in ("runtime-models", "runtime-docker"):  # keeps runtime-logs/
            shutil.rmtree(work / folder, ignore_errors=True)
    shutil.rmtree(work / "registry", ignore_errors=True)
    (work / "state.json").unlink(missing_ok=True)
    return 0


def start(
    work: Path, moto_port: int, registry_port: int, registry: bool, timeout: float, runtime: int
) -> int:
    """runtime: -1 for none, else the runtime's port (0: a free one); it needs the registry."""
    work.mkdir(parents=True, exist_ok=True)
    state = load_state(work)
    alive = running(state)
    wanted = {"moto", "registry"} if registry else {"moto"}
    if all(alive.get(name) for name in wanted):
        if runtime >= 0 and not alive.get("runtime"):
            start_runtime(work, runtime, state, timeout)  # (re)starts just the runtime
        say(f"already running: {', '.join(sorted(n for n, up in running(state).items() if up))}")
        return 0
    if alive:
        say("a previous start is partly down: stopping what is left of it")
        stop(work)
    state: dict[str, Any] = {"region": REGION, "components": {}}
    try:
        port = start_moto(work, moto_port or free_port(), state, timeout)
        if registry:
            password = moto_ecr_password(port)
            start_registry(work, registry_port or free_port(), password, state, timeout)
        if runtime >= 0:
            start_runtime(work, runtime, state, timeout)
    except BaseException:
        stop(work)
        raise
    return 0


def env_vars(state: dict[str, Any]) -> dict[str, str]:
    components = state.get("components", {})
    if "moto" not in components:
        raise LocalAwsError("not running: python scripts/localsm/aws.py start")
    moto_port = components["moto"]["port"]
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
        "AWS_REGION": state.get("region", REGION),
        "AWS_DEFAULT_REGION": state.get("region", REGION),
        "LOCAL_AWS_MOTO_PORT": str(moto_port),
    }
    if "registry" in components:
        env["ECR_REGISTRY_HOST"] = f"127.0.0.1:{components['registry']['port']}"
        env["LOCAL_AWS_REGISTRY_PORT"] = str(components["registry"]["port"])
    if "runtime" in components:
        runtime_port = components["runtime"]["port"]
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = f"http://127.0.0.1:{runtime_port}"
        env["LOCAL_AWS_RUNTIME_PORT"] = str(runtime_port)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, with_common=False)
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(os.environ.get("LOCAL_AWS_DIR", DEFAULT_DIR)),
        help="where state, pid files and logs live (default: %(default)s)",
    )
    parser.add_argument(
        "--moto-port", type=int, default=int(os.environ.get("LOCAL_AWS_MOTO_PORT", "0"))
    )
    parser.add_argument(
        "--registry-port", type=int, default=int(os.environ.get("LOCAL_AWS_REGISTRY_PORT", "0"))
    )
    parser.add_argument("--no-registry", action="store_true", help="start moto only")
    parser.add_argument(
        "--runtime", action="store_true", help="also the local SageMaker runtime (Docker)"
    )
    parser.add_argument(
        "--runtime-port", type=int, default=int(os.environ.get("LOCAL_AWS_RUNTIME_PORT", "0"))
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="start-up timeout, seconds")
    parser.add_argument("--format", choices=["shell", "json"], default="shell", help="for env")
    args = parser.parse_args(argv)
    work: Path = args.work_dir.resolve()
    try:
        if args.command == "start":
            runtime = args.runtime_port if args.runtime else -1
            start(
                work,
                args.moto_port,
                args.registry_port,
                not args.no_registry,
                args.timeout,
                runtime,
            )
            args.command = "env"
        if args.command == "stop":
            return stop(work)
        state = load_state(work)
        if args.command == "status":
            alive = running(state)
            for name, entry in state.get("components", {}).items():
                up = "running" if alive[name] else "DOWN"
                print(f"{name}: {up} pid {entry['pid']} 127.0.0.1:{entry['port']}")
            if not alive:
                print("not running")
            return 0 if alive and all(alive.values()) else 3
        env = env_vars(state)
        if args.format == "json":
            print(json.dumps(env, indent=2))
        else:
            print("unset AWS_PROFILE AWS_SESSION_TOKEN")
            for key, value in env.items():
                print(f"export {key}={value}")
        return 0
    except (LocalAwsError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
