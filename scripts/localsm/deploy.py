"""Containers of one endpoint, started locally as SageMaker hosting would (for runtime.py).

Per endpoint (its current config's first variant, one instance):

- the model's ``Containers`` (or ``PrimaryContainer``) are read from moto;
- each image is pulled from the local registry: an ECR URI ``<account>.dkr.ecr.<region>.
  amazonaws.com[.cn]/<repo>:<tag>`` becomes ``<registry>/<repo>:<tag>`` whatever the account, so
  the built-in ``ntm:1`` and ``knn:1`` of any region come from the stand-ins pushed there under
  those names; a URI already naming the registry is used as it is; anything else is refused,
  as SageMaker refuses images outside ECR;
- each ``ModelDataUrl`` is downloaded from moto's S3, unpacked once (cache keyed by URL and
  ETag) and mounted read-only at ``/opt/ml/model``;
- the containers share one network namespace (a ``sleep`` sandbox, like co-located containers
  on one instance) whose ports are published on 127.0.0.1 only; in a pipeline each gets
  ``SAGEMAKER_BIND_TO_PORT`` (9000, 9100, ...) and ``SAGEMAKER_SAFE_PORT_RANGE`` (9001-9099,
  ...), a single container listens on 8080; then ``docker run IMAGE serve`` with its
  ``Environment``, and ``GET /ping`` is polled until 200 (2 s per ping; the variant's
  ``ContainerStartupHealthCheckTimeoutInSeconds``, else 240 s, in all).

Every container carries the label ``sm-text-pipeline.local-runtime=<runtime id>``: ``sweep``
removes exactly those (what a killed runtime left behind), nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from scripts.aws_common import log
from scripts.localsm.cleanup import LABEL, image_present, record_pull
from scripts.localsm.deployment import Box, Deployment

BIND_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
ECR_RE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<rest>.+)$")
BASE_PORT, PORT_STEP = 9000, 100
STARTUP_TIMEOUT = 240.0


class DeployError(Exception):
    pass


say = partial(log, who="runtime")  # the runtime's progress lines: [runtime HH:MM:SS] ...


def docker(*args: str, timeout: float = 300, stdin: str | None = None, env: Any = None) -> str:
    try:
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeployError(f"docker {args[0]}: {exc}") from None
    if done.returncode != 0:
        raise DeployError(f"docker {' '.join(args[:2])}: {done.stderr.strip()[-1500:]}")
    return done.stdout.strip()


def local_image(uri: str, registry: str) -> str:
    """Where the local registry keeps an image SageMaker would pull from ECR."""
    if uri.startswith(registry + "/"):
        return uri
    match = ECR_RE.match(uri)
    if not match:
        raise DeployError(f"image {uri} is neither an ECR URI nor in the local registry {registry}")
    return f"{registry}/{match.group('rest')}"


class Deployer:
    """Starts and stops deployments; shared by the runtime's threads."""

    def __init__(self, work: Path, runtime_id: str, registry: str, password: str, aws: Any):
        self.work, self.runtime_id, self.registry, self.aws = work, runtime_id, registry, aws
        self.docker_env = {**os.environ, "DOCKER_CONFIG": str(work / "runtime-docker")}
        (work / "runtime-docker").mkdir(parents=True, exist_ok=True)
        self.cache = work / "runtime-models"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.logged_in = False
        self.lock = threading.Lock()

    # -- reading the endpoint from moto ------------------------------------------------------
    def plan(self, endpoint: str) -> tuple[Deployment, list[dict[str, Any]], float]:
        sm = self.aws("sagemaker")
        config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        desc = sm.describe_endpoint_config(EndpointConfigName=config)
        variant = desc["ProductionVariants"][0]
        model = sm.describe_model(ModelName=variant["ModelName"])
        containers = list(model.get("Containers") or [model["PrimaryContainer"]])
        timeout = float(variant.get("ContainerStartupHealthCheckTimeoutInSeconds", STARTUP_TIMEOUT))
        dep = Deployment(endpoint, config, variant["VariantName"], variant["ModelName"],
                         capture=desc.get("DataCaptureConfig") or {})
        return dep, containers, timeout

    # -- images and model data ---------------------------------------------------------------
    def pull(self, uri: str, pipeline: bool, dep: Deployment) -> str:
        image = local_image(uri, self.registry)
        with self.lock:
            if not self.logged_in:
                docker(
                    "login", "--username", "AWS", "--password-stdin", self.registry,
                    stdin=self.password, env=self.docker_env, timeout=60,
                )  # fmt: skip
                self.logged_in = True
        fresh = not image_present(image)
        docker("pull", "--quiet", image, env=self.docker_env, timeout=900)
        if fresh:  # only what this pull tagged: cleanup.sweep untags it when the runtime stops
            record_pull(self.work, image)
        labels = json.loads(
            docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
        )
        if pipeline and (labels or {}).get(BIND_LABEL) != "true":
            # The DG (inference-pipeline-real-time, contract §1) requires the label of every
            # pipeline container, and SageMaker fails the deployment without it: so do we.
            raise DeployError(f"{uri} lacks LABEL {BIND_LABEL}=true, which every container "
                              "of an inference pipeline must have")
        return image

    def model_dir(self, url: str) -> Path:
        match = re.match(r"^s3://([^/]+)/(.+)$", url)
        if not match:
            raise DeployError(f"ModelDataUrl {url} is not an s3:// URI")
        bucket, key = match.groups()
        s3 = self.aws("s3")
        try:
            etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        except Exception as exc:
            raise DeployError(f"cannot read {url} from S3: {exc}") from None
        digest = hashlib.sha256(f"{url}\n{etag}".encode()).hexdigest()[:16]
        target = self.cache / digest
        with self.lock:
            if target.is_dir():
                return target
            tmp = self.cache / f".{digest}.{uuid.uuid4().hex[:6]}"
            tmp.mkdir()
            archive = tmp / "model.tar.gz"
            s3.download_file(bucket, key, str(archive))
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    tar.extractall(tmp / "model", filter="data")
            except (tarfile.TarError, OSError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise DeployError(f"{url} is not a readable .tar.gz: {exc}") from None
            for path in [tmp / "model", *(tmp / "model").rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            (tmp / "model").rename(target)
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -- containers --------------------------------------------------------------------------
    def deploy(self, dep: Deployment, containers: list[dict[str, Any]], timeout: float) -> None:
        """Start every container and wait for its /ping; raises DeployError (and cleans up)."""
        pipeline = len(containers) > 1
        try:
            tag = uuid.uuid4().hex[:6]
            for i, spec in enumerate(containers):
                hostname = spec.get("ContainerHostname") or (
                    f"container-{i + 1}" if pipeline else "primary"
                )
                port = BASE_PORT + PORT_STEP * i if pipeline else 8080
                dep.boxes.append(Box(hostname, self.pull(spec["Image"], pipeline, dep), port))
            name = f"smlr-{dep.endpoint}-{tag}"
            publish = [a for b in dep.boxes for a in ("-p", f"127.0.0.1::{b.port}")]
            dep.sandbox = docker(
                "run", "-d", "--name", f"{name}-net", "--label", f"{LABEL}={self.runtime_id}",
                *publish, "--entrypoint", "sleep", dep.boxes[0].image, "infinity",
            )  # fmt: skip
            for box, spec in zip(dep.boxes, containers, strict=True):
                self.start_box(dep, box, spec, f"{name}-{box.hostname}", pipeline)
            self.wait_healthy(dep, timeout)
        except BaseException:
            self.teardown(dep)
            raise

    def start_box(
        self, dep: Deployment, box: Box, spec: dict[str, Any], name: str, pipeline: bool
    ) -> None:
        env = dict(spec.get("Environment") or {})
        if pipeline:
            low = box.port + 1
            env["SAGEMAKER_BIND_TO_PORT"] = str(box.port)
            env["SAGEMAKER_SAFE_PORT_RANGE"] = f"{low}-{low + PORT_STEP - 2}"
        args = ["run", "-d", "--name", name, "--label", f"{LABEL}={self.runtime_id}"]
        args += ["--network", f"container:{dep.sandbox}"]
        if spec.get("ModelDataUrl"):
            args += ["-v", f"{self.model_dir(spec['ModelDataUrl'])}:/opt/ml/model:ro"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        box.name = name
        box.container_id = docker(*args, box.image, "serve")
        out = docker("port", dep.sandbox, f"{box.port}/tcp")
        box.host_port = int(out.splitlines()[0].rsplit(":", 1)[1])
        say(f"{dep.endpoint}: started {box.hostname} ({box.image}) as {name}")

    def wait_healthy(self, dep: Deployment, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(dep.boxes)
        while waiting:
            for box in list(waiting):
                if ping(box.host_port):
                    waiting.remove(box)
                    continue
                state = docker("inspect", "--format", "{{.State.Status}}", box.container_id)
                if state != "running":
                    raise DeployError(
                        f"container {box.hostname} exited before answering /ping on port "
                        f"{box.port}:\n{self.logs(box, 30)}"
                    )
            if waiting and time.monotonic() > deadline:
                names = ", ".join(b.hostname for b in waiting)
                raise DeployError(f"no 200 from /ping of {names} within {timeout:.0f} s")
            time.sleep(0.5 if waiting else 0)

    def logs(self, box: Box, tail: int = 200) -> str:
        try:
            done = subprocess.run(
                ["docker", "logs", "--tail", str(tail), box.container_id],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return (done.stdout + done.stderr).strip()

    def teardown(self, dep: Deployment) -> None:
        """Keep each container's log under runtime-logs/, then remove the containers."""
        log_dir = self.work / "runtime-logs" / dep.endpoint
        ids = []
        for box in dep.boxes:
            if box.container_id:
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / f"{dep.variant}-{box.hostname}.log").write_text(self.logs(box, 5000))
                ids.append(box.container_id)
        ids += [dep.sandbox] if dep.sandbox else []
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
            say(f"{dep.endpoint}: removed {len(ids)} containers of {dep.config}")
        dep.boxes, dep.sandbox = [], ""


def ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False
