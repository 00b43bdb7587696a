"""The whole recommendation pipeline, offline: the stack tests/e2e share (fixture in conftest.py;
the helpers live here so the tests can import them).

Built with the project's own scripts, each run as a user would (a child process):
``build_standins.sh`` (FROM the project image, which must be built) -> ``serving.train`` on
20 Newsgroups -> ``localsm/aws.py start --runtime`` (moto, registry, local SageMaker runtime) ->
``ecr_push.py`` (our image; the stand-ins as the built-in ``ntm:1`` / ``knn:1``) ->
``upload_artifacts.py`` -> ``builtin_training.py all --local`` -> ``endpoints.py``
``create-classifier`` / ``create-pipeline``.
Everything runs in a temporary work dir and is stopped (containers included) at the end.

Skipped, with the reason, without a Docker daemon, the image, Debian's docker-registry and
htpasswd, or the 20 Newsgroups data in ../shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
DATA_TGZ = SHARED / "data" / "20news-bydate.tar.gz"
NLTK_DATA = SHARED / "nltk_data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.stack_checks import missing_prerequisite as _missing  # noqa: E402

IMAGE = os.environ.get("SM_TEST_IMAGE", "sm-text-pipeline:latest")
ROLE_NAME = "sm-text-e2e"


def missing_prerequisite() -> str | None:
    return _missing(IMAGE, DATA_TGZ)


def outputs(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.isupper() and k.replace("_", "").isalnum()}


@dataclass
class Stack:
    """The running stack: environment for the scripts, their KEY=value outputs, timings, and
    the image references ecr_push.py tagged locally (`untag_pushed` removes them)."""

    work: Path
    env: dict[str, str]
    out: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)

    def push(self, label: str, *args: str) -> str:
        """ecr_push.py ARGS; returns IMAGE_URI and remembers the two tags it made (it, latest)."""
        uri = self.step(label, "ecr_push", *args)["IMAGE_URI"]
        self.pushed += [uri, uri.rsplit(":", 1)[0] + ":latest"]
        return uri

    def untag_pushed(self) -> None:
        """Remove exactly the references `push` tagged (the images stay if other tags hold them)."""
        if self.pushed:
            subprocess.run(
                ["docker", "image", "rm", *self.pushed], capture_output=True, check=False
            )
            self.pushed = []

    def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            argv, cwd=REPO, env=self.env, input=stdin, capture_output=True, timeout=timeout
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(argv[:3])} exited {done.returncode}:\n"
                f"{done.stderr.decode(errors='replace')[-3000:]}"
            )
        return done

    def script(self, name: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return self.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), *args], **kw)

    def step(self, label: str, name: str, *args: str, **kw: Any) -> dict[str, str]:
        started = time.monotonic()
        found = outputs(self.script(name, *args, **kw).stdout.decode())
        self.timings[label] = round(time.monotonic() - started, 1)
        self.out.update(found)
        return found

    @property
    def runtime_url(self) -> str:
        return self.env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]

    def deployments(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.runtime_url}/_local/endpoints", timeout=10) as resp:
            docs = json.loads(resp.read())
        by_name: dict[str, dict[str, Any]] = {}
        for doc in docs:  # live first, so a live one wins over a pending update
            by_name.setdefault(doc["endpoint"], doc)
        return by_name

    def wait_in_service(self, *names: str, timeout: float = 300) -> float:
        """Wait until the runtime serves every endpoint; returns the seconds it took."""
        started = time.monotonic()
        while True:
            deps = self.deployments()
            states = {n: deps.get(n, {}).get("state", "not seen") for n in names}
            failed = {n: deps[n]["reason"] for n, s in states.items() if s == "Failed"}
            if failed:
                pytest.fail(f"local deployment failed: {failed}")
            if all(s == "InService" for s in states.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                pytest.fail(f"endpoints not InService after {timeout:.0f} s: {states}")
            time.sleep(1)

    def invoke(self, endpoint: str, *args: str, stdin: bytes | None = None, check: bool = True):
        return self.script("invoke", "--endpoint", endpoint, *args, stdin=stdin, check=check)

    def runtime_client(self) -> Any:
        """boto3's sagemaker-runtime client, pointed at the local runtime like the scripts."""
        import boto3

        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.runtime_url,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def chain(self, endpoint: str) -> list[dict[str, Any]]:
        """What each container got and answered in the endpoint's last request."""
        return list(self.deployments()[endpoint]["last_chain"])

    def pipeline_args(self) -> list[str]:
        o = self.out
        return [
            *("--image", o["IMAGE_URI"], "--model-data", o["MODEL_DATA_URL"]),
            *("--ntm-training-job", o["NTM_TRAINING_JOB"]),
            *("--knn-training-job", o["KNN_TRAINING_JOB"]),
            *("--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1"),
        ]


def clean_env(work: Path) -> dict[str, str]:
    drop = ("AWS_", "SAGEMAKER_", "IMAGE_URI", "ECR_REGISTRY_HOST", "LOCAL_AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        DOCKER_CONFIG=str(work / "docker-config"),
        PYTHONUNBUFFERED="1",
    )
    if NLTK_DATA.is_dir():
        env["NLTK_DATA"] = str(NLTK_DATA)
    (work / "docker-config").mkdir(parents=True, exist_ok=True)
    return env


def create_role(env: dict[str, str]) -> str:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
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
    role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])
