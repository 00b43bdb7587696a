"""Push the serving image to Amazon ECR and print its URI and digest.

Steps (each safe to repeat):
  1. optionally build it: --build runs `bash scripts/build_image.sh`;
  2. ensure the repository: scan on push, a lifecycle policy expiring untagged images after
     --untagged-days, and a repository policy statement letting sagemaker.amazonaws.com pull
     (needed when built-in and custom containers share an inference pipeline);
  3. ecr.get_authorization_token -> `docker login --username AWS --password-stdin` (the password
     never appears on a command line or in a log);
  4. tag with the git sha (--tag; default $CODEBUILD_RESOLVED_SOURCE_VERSION or `git rev-parse
     HEAD`, 12 characters) and `latest`, push both;
  5. print IMAGE_URI=<registry>/<repo>:<sha> and IMAGE_DIGEST=<registry>/<repo>@sha256:...

--registry-host HOST[:PORT] (or $ECR_REGISTRY_HOST) logs in and pushes to that registry instead of
the proxyEndpoint ECR returns: the tests use it to push to a local registry next to moto.
Docker's credentials go where the docker CLI keeps them ($DOCKER_CONFIG or ~/.docker).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from scripts.aws_cli import make_parser, run_main
from scripts.aws_common import REPO_ROOT, Aws, ScriptError, emit, error_code, is_not_found

DEFAULT_REPOSITORY = "sm-text-pipeline"
DEFAULT_IMAGE = "sm-text-pipeline:latest"
PULL_SID = "AllowSageMakerPull"
PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]


def lifecycle_policy(days: int) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"expire untagged images {days} days after push",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": days,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def with_pull_statement(policy_text: str | None) -> dict[str, Any]:
    """The repository policy with our SageMaker pull statement added or refreshed by Sid."""
    policy = json.loads(policy_text) if policy_text else {"Version": "2012-10-17", "Statement": []}
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != PULL_SID]
    statements.append(
        {
            "Sid": PULL_SID,
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": PULL_ACTIONS,
        }
    )
    policy["Statement"] = statements
    return policy


def ensure_repository(aws: Aws, name: str, untagged_days: int) -> None:
    ecr = aws.client("ecr")
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        aws.note(f"repository {name} exists")
        if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
            ecr.put_image_scanning_configuration(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
            )
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        try:
            ecr.create_repository(
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": True},
                imageTagMutability="MUTABLE",
            )
            aws.note(f"created repository {name}")
        except ClientError as race:
            if error_code(race) != "RepositoryAlreadyExistsException":
                raise
    wanted = lifecycle_policy(untagged_days)
    try:
        current = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        current = None
    if current != wanted:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(wanted))
    try:
        text = ecr.get_repository_policy(repositoryName=name)["policyText"]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        text = None
    policy = with_pull_statement(text)
    if not text or json.loads(text) != policy:
        ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(policy))


def login(aws: Aws, registry_host: str | None) -> str:
    """docker login with the ECR token; returns the registry host logged in to."""
    data = aws.client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = registry_host or re.sub(r"^https?://", "", data["proxyEndpoint"]).rstrip("/")
    aws.run(
        ["docker", "login", "--username", user, "--password-stdin", host], stdin_secret=password
    )
    aws.note(f"logged in to {host}")
    return host


def resolve_tag(tag: str | None) -> str:
    value = tag or os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", "")
    if not value:
        try:
            value = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            raise ScriptError("no git commit to tag the image with: pass --tag", 2) from None
    if re.fullmatch(r"[0-9a-f]{40}", value):
        value = value[:12]
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", value):
        raise ScriptError(f"not a valid image tag: {value!r}", 2)
    return value


def push(aws: Aws, local_image: str, remote: str, tags: list[str]) -> str:
    """Tag and push; returns the digest docker reports for the pushed manifest."""
    digest = ""
    for tag in tags:
        aws.run(["docker", "tag", local_image, f"{remote}:{tag}"])
        output = aws.run(["docker", "push", f"{remote}:{tag}"], stream=True)
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
        if found:
            digest = found.group(1)
    if not digest and not aws.dry_run:
        raise ScriptError("docker push did not report a digest")
    return digest


def handler(args: argparse.Namespace) -> int:
    aws = Aws.from_args(args)
    if not aws.dry_run:
        if not shutil.which("docker"):
            raise ScriptError("docker CLI not found: install docker.io (scripts/setup.sh)", 2)
        try:
            aws.run(["docker", "version", "--format", "{{.Server.Version}}"])
        except ScriptError:
            raise ScriptError(
                "the Docker daemon does not answer: bash scripts/start_dockerd.sh", 2
            ) from None
    if args.build:
        aws.run(["bash", "scripts/build_image.sh"], stream=True, cwd=REPO_ROOT)
    # Pin the image by id: both tags get the same image even if the name moves meanwhile.
    local = args.image
    if aws.dry_run:
        aws.recorder.command(["docker", "image", "inspect", args.image])
    else:
        try:
            inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", args.image]
            local = aws.run(inspect).strip() or args.image
        except ScriptError as exc:
            raise ScriptError(
                f"local image {args.image} not found: build it (bash scripts/build_image.sh, "
                f"or --build) or pass --image ({exc})",
                2,
            ) from None
    tag = resolve_tag(args.tag)
    ensure_repository(aws, args.repository, args.untagged_days)
    host = login(aws, args.registry_host)
    remote = f"{host}/{args.repository}"
    digest = push(aws, local, remote, [tag, "latest"])
    uri = f"{remote}:{tag}"
    emit("IMAGE_URI", uri)
    emit("IMAGE_DIGEST", f"{remote}@{digest or '<digest>'}")
    if args.image_detail:
        Path(args.image_detail).write_text(json.dumps({"ImageURI": uri}) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--repository",
        default=os.environ.get("IMAGE_REPO_NAME", DEFAULT_REPOSITORY),
        help="ECR repository name (default: $IMAGE_REPO_NAME or %(default)s)",
    )
    parser.add_argument(
        "--image", default=DEFAULT_IMAGE, help="local image to push (default: %(default)s)"
    )
    parser.add_argument("--tag", help="tag besides 'latest' (default: the git sha, 12 chars)")
    parser.add_argument("--build", action="store_true", help="run scripts/build_image.sh first")
    parser.add_argument(
        "--untagged-days", type=int, default=7, help="expire untagged images after N days"
    )
    parser.add_argument(
        "--registry-host",
        default=os.environ.get("ECR_REGISTRY_HOST") or None,
        help="push to this registry host instead of ECR's proxyEndpoint (tests)",
    )
    parser.add_argument("--image-detail", help="also write {'ImageURI': ...} JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
