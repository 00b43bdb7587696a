"""A moto + registry + local SageMaker runtime of its own, for the batch transform tests.

Its own (not the session's ``local_aws``): while a runtime is attached, moto keeps transform jobs
``InProgress`` and the runtime runs them, which the other AWS tests (instant ``Completed`` jobs)
do not expect. The image (``$SM_TEST_IMAGE``) is pushed with ``ecr_push.py`` and the models
uploaded with ``upload_artifacts.py``, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import REPO, outputs, stack_checks

IMAGE = os.environ.get("SM_TEST_IMAGE", "sm-text-pipeline:latest")
ROLE = "arn:aws:iam::123456789012:role/sm-text-transform-test"
PUSHED = "pushed-refs.txt"  # what start() tagged via ecr_push.py, untagged by stop()


def missing_prerequisite() -> str | None:
    return stack_checks.missing_prerequisite(IMAGE)


@dataclass
class TransformStack:
    work: Path
    env: dict[str, str]
    image_uri: str = ""
    models: dict[str, str] = field(default_factory=dict)  # model dir -> MODEL_DATA_URL

    def run(self, name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``python scripts/<name>.py ARGS`` as a user runs it, against this stack."""
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / f"{name}.py"), *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def script(self, name: str, *args: str, timeout: float = 600) -> dict[str, str]:
        done = self.run(name, *args, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(f"{name}.py {' '.join(args[:2])} exited {done.returncode}:\n"
                        f"{done.stderr[-3000:]}")  # fmt: skip
        return outputs(done.stdout)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def model_data(self, model_dir: Path, prefix: str) -> str:
        if str(model_dir) not in self.models:
            found = self.script(
                "upload_artifacts", "--model-dir", str(model_dir), "--prefix", prefix
            )
            self.models[str(model_dir)] = found["MODEL_DATA_URL"]
        return self.models[str(model_dir)]

    def model(self, name: str, model_dir: Path, env: dict[str, str] | None = None) -> str:
        """A SageMaker model of our image (classify) in moto; created once per name."""
        sm = self.client("sagemaker")
        names = {m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]}
        if name not in names:
            box = {
                "Image": self.image_uri,
                "ModelDataUrl": self.model_data(model_dir, f"models-{len(self.models)}"),
                "Environment": {"SERVING_STAGE": "classify", **(env or {})},
            }
            sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=box)
        return name

    def bucket(self, name: str) -> None:
        s3 = self.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name)

    def put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.bucket(bucket)
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    def get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bytes(self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    def keys(self, uri: str) -> list[str]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        page = self.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in page.get("Contents", []))

    def wait(self, job: str, timeout: float = 600) -> dict[str, Any]:
        sm = self.client("sagemaker")
        deadline = time.monotonic() + timeout
        while True:
            desc = sm.describe_transform_job(TransformJobName=job)
            if desc["TransformJobStatus"] not in ("InProgress", "Stopping"):
                return dict(desc)
            if time.monotonic() > deadline:
                pytest.fail(f"transform job {job} still {desc['TransformJobStatus']}")
            time.sleep(0.5)

    def data_log(self, job: str) -> str:
        return (self.work / "runtime-logs" / f"transform-{job}" / "data-log.txt").read_text()


def start(work: Path) -> TransformStack:
    local_aws = [sys.executable, str(REPO / "scripts" / "localsm" / "aws.py")]
    started = subprocess.run(
        [*local_aws, "start", "--runtime", "--work-dir", str(work)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        stop(work)
        pytest.fail(f"local_aws start --runtime failed:\n{started.stderr[-3000:]}")
    env_json = subprocess.run(
        [*local_aws, "env", "--work-dir", str(work), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    drop = ("AWS_", "SAGEMAKER_", "IMAGE_URI", "ECR_REGISTRY_HOST", "LOCAL_AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(json.loads(env_json))
    env.update(
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        DOCKER_CONFIG=str(work / "docker-config"),
        SAGEMAKER_ROLE_ARN=ROLE,
    )
    (work / "docker-config").mkdir(exist_ok=True)
    stack = TransformStack(work, env)
    stack.image_uri = stack.script("ecr_push", "--image", IMAGE, "--tag", "transform")["IMAGE_URI"]
    latest = stack.image_uri.rsplit(":", 1)[0] + ":latest"
    (work / PUSHED).write_text(f"{stack.image_uri}\n{latest}\n")  # for stop() to untag
    return stack


def stop(work: Path) -> None:
    """Stop the stack, then remove exactly the two references ecr_push.py tagged in start()."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "localsm" / "aws.py"), "stop", "--work-dir",
         str(work)],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    pushed = work / PUSHED
    if pushed.is_file():
        refs = pushed.read_text().split()
        subprocess.run(["docker", "image", "rm", *refs], capture_output=True, check=False)
        pushed.unlink()
