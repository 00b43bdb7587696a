"""Shared plumbing for the AWS workflow scripts.

Session and clients (plain boto3: ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` redirect
them, nothing else does), region and credential checks with clear messages, a dry-run mode that
records and prints every API call and command instead of making it, external commands with
secrets kept to stdin. Waiting with progress: scripts/aws_waits.py. Options and exit codes:
scripts/aws_cli.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ProfileNotFound,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DRY_ACCOUNT = "<account-id>"
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE "
    "(or pass --profile), or run where an instance/CodeBuild role is available"
)
NO_REGION = "no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)"
NOT_FOUND_CODES = {
    "404",
    "NoSuchBucket",
    "NoSuchEntity",
    "NoSuchKey",
    "NotFound",
    "ResourceNotFound",
    "RepositoryNotFoundException",
    "LifecyclePolicyNotFoundException",
    "RepositoryPolicyNotFoundException",
}
# Standard retry mode; the number of attempts stays configurable ($AWS_MAX_ATTEMPTS, default 3).
_CLIENT_CONFIG = Config(retries={"mode": "standard"})


class ScriptError(Exception):
    """A failure to report to the user as one message (no traceback)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def log(message: str, who: str = "") -> None:
    """Progress and diagnostics go to stderr; results go to stdout. who: the emulator's part."""
    stamp = f"{who} {time.strftime('%H:%M:%S')}" if who else time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def emit(key: str, value: object) -> None:
    """A result line, ``KEY=value`` on stdout, easy to read from a shell or CodeBuild."""
    print(f"{key}={value}", flush=True)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return code == "ValidationException" and bool(
        re.search(r"could not find|not found|does not exist", message, re.IGNORECASE)
    )


def short_hash(obj: Any, length: int = 8) -> str:
    """A stable digest of a JSON-able value: same definition, same resource name."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = re.match(r"^s3://([^/]+)/?(.*)$", uri or "")
    if not match:
        raise ScriptError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)", 2)
    return match.group(1), match.group(2)


def dns_suffix(region: str) -> str:
    """The partition's DNS suffix for a region, from botocore's own partition table."""
    data = botocore.loaders.create_loader().load_data("partitions")
    for partition in data["partitions"]:
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            return str(partition["outputs"]["dnsSuffix"])
    return "amazonaws.com"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass
class Recorder:
    """What a dry run would have done, in order: API calls and external commands."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)

    def call(self, service: str, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((service, operation, params))
        shown = json.dumps(params, default=str, sort_keys=True)
        print(f"[dry-run] {service}.{operation} {shown}", flush=True)

    def command(self, cmd: Sequence[str], note: str = "") -> None:
        self.commands.append(list(cmd))
        print(f"[dry-run] $ {' '.join(cmd)}{note}", flush=True)


_CANNED: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("sts", "get_caller_identity"): lambda region: {
        "Account": DRY_ACCOUNT,
        "Arn": f"arn:aws:sts::{DRY_ACCOUNT}:assumed-role/dry-run",
    },
    ("ecr", "get_authorization_token"): lambda region: {
        "authorizationData": [
            {
                # base64 of "AWS:<redacted>": never a real secret
                "authorizationToken": "QVdTOjxyZWRhY3RlZD4=",
                "proxyEndpoint": f"https://{DRY_ACCOUNT}.dkr.ecr.{region}.{dns_suffix(region)}",
            }
        ]
    },
}
_NOT_FOUND_BY_SERVICE = {
    "ecr": "RepositoryNotFoundException",
    "s3": "404",
    "iam": "NoSuchEntity",
    "sagemaker": "ValidationException",
}


class DryRunClient:
    """Stands in for a boto3 client: records each call and answers without any network.

    Reads (describe/get/head) answer "not found", lists answer empty, so a dry run prints the
    full plan of what a run against an empty account would do.
    """

    def __init__(self, service: str, region: str, recorder: Recorder) -> None:
        self._service = service
        self._region = region
        self._recorder = recorder

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)

        def call(**params: Any) -> dict[str, Any]:
            self._recorder.call(self._service, operation, params)
            canned = _CANNED.get((self._service, operation))
            if canned:
                return canned(self._region)
            if operation.startswith(("describe_", "get_", "head_")) and not operation.startswith(
                ("describe_scal", "get_waiter")
            ):
                code = _NOT_FOUND_BY_SERVICE.get(self._service, "ResourceNotFound")
                error = {"Code": code, "Message": "Could not find it (dry run assumes absent)"}
                raise ClientError({"Error": error}, operation)
            return {}

        return call


class Aws:
    """One script's view of AWS: region, credentials, clients (real or dry-run), commands."""

    def __init__(
        self, region: str | None = None, profile: str | None = None, dry_run: bool = False
    ) -> None:
        # botocore reads AWS_DEFAULT_REGION; CodeBuild and Lambda also set AWS_REGION.
        region = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region or None)
        except ProfileNotFound as exc:
            raise ScriptError(f"AWS profile not found: {exc}", 2) from None
        self.region: str = self.session.region_name or ""
        if not self.region:
            raise ScriptError(NO_REGION, 2)
        self.dry_run = dry_run
        self.recorder = Recorder()
        self._clients: dict[str, Any] = {}
        self._account: str | None = None
        if dry_run:
            log("dry run: no AWS call and no command is made; reads are assumed to find nothing")
        elif self.session.get_credentials() is None:
            raise ScriptError(NO_CREDENTIALS, 2)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Aws:
        return cls(region=args.region, profile=args.profile, dry_run=args.dry_run)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self.dry_run:
                self._clients[service] = DryRunClient(service, self.region, self.recorder)
            else:
                self._clients[service] = self.session.client(service, config=_CLIENT_CONFIG)
        return self._clients[service]

    def note(self, message: str) -> None:
        """Log what was done (silent in a dry run, where nothing is done)."""
        if not self.dry_run:
            log(message)

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def account_id(self) -> str:
        if self._account is None:
            self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account

    def run(
        self,
        cmd: Sequence[str],
        *,
        stdin_secret: str | None = None,
        stream: bool = False,
        cwd: Path | None = None,
    ) -> str:
        """Run a command and return its output; a secret goes in on stdin and never into a log.

        With ``stream`` each output line is echoed to stderr as it comes (progress of long
        commands such as ``docker push``). In a dry run the command is only recorded.
        """
        if self.dry_run:
            self.recorder.command(cmd, "  (secret on stdin)" if stdin_secret is not None else "")
            return ""
        log("$ " + " ".join(cmd))
        if stream:
            lines: list[str] = []
            with subprocess.Popen(
                list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
            ) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line)
                    print("  " + line.rstrip(), file=sys.stderr, flush=True)
            code, output = proc.returncode, "".join(lines)
        else:
            done = subprocess.run(
                list(cmd), input=stdin_secret, text=True, capture_output=True, cwd=cwd, check=False
            )
            code, output = done.returncode, done.stdout + done.stderr
        if stdin_secret:
            output = output.replace(stdin_secret, "<redacted>")
        if code != 0:
            tail = ("\n" + output.strip()[-2000:]) if output.strip() else ""
            raise ScriptError(f"command failed (exit {code}): {' '.join(cmd[:2])}{tail}")
        return output
