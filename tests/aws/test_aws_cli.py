"""Every script as a user runs it: --help, clear errors and exit codes; buildspec.yml's commands."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from aws_helpers import REPO, run_script

from scripts import ecr_push

pytestmark = pytest.mark.aws

SCRIPTS = [
    "ecr_push",
    "upload_artifacts",
    "builtin_training",
    "endpoints",
    "invoke",
    "batch_transform",
    "localsm/aws",
    "builtin_images",
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in {"SAGEMAKER_ROLE_ARN", "IMAGE_URI"}
    }
    env.update(
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        **extra,
    )
    return env


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name: str) -> None:
    done = run_script(name, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    if name not in {"localsm/aws", "builtin_images", "endpoints", "builtin_training"}:
        assert "--region" in done.stdout and "--dry-run" in done.stdout


@pytest.mark.parametrize("sub", ["create-classifier", "create-pipeline", "update", "autoscale"])
def test_subcommand_help(sub: str) -> None:
    done = run_script("endpoints", sub, "--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout and "--region" in done.stdout


def test_missing_credentials_and_region() -> None:
    argv = ["--endpoint", "e", "--input", os.devnull]
    no_creds = run_script("invoke", *argv, env=clean_env(AWS_DEFAULT_REGION="us-east-1"))
    assert no_creds.returncode == 2
    assert "no AWS credentials found" in no_creds.stderr
    assert "Traceback" not in no_creds.stderr
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    no_region = run_script("invoke", *argv, env=clean_env(**creds))
    assert no_region.returncode == 2
    assert "no AWS region: pass --region" in no_region.stderr


def test_unreachable_endpoint_is_a_failure_not_a_traceback() -> None:
    env = clean_env(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_MAX_ATTEMPTS="1",
    )
    done = run_script("endpoints", "delete", "--name", "x", env=env)
    assert done.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in done.stderr and "Traceback" not in done.stderr


def test_buildspec_runs_the_push_script() -> None:
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((REPO / "buildspec.yml").read_text())
    assert str(spec["version"]) == "0.2"
    assert spec["phases"]["install"]["runtime-versions"]["python"] in (3.11, "3.11")
    pre = " ".join(spec["phases"]["pre_build"]["commands"])
    assert "get_caller_identity" in pre and "CODEBUILD_RESOLVED_SOURCE_VERSION" in pre
    (build, *_) = spec["phases"]["build"]["commands"]
    env = {
        "AWS_REGION": "us-east-1",
        "IMAGE_REPO_NAME": spec["env"]["variables"]["IMAGE_REPO_NAME"],
        "IMAGE_TAG": "0123456789ab",
        "UNTAGGED_IMAGE_DAYS": spec["env"]["variables"]["UNTAGGED_IMAGE_DAYS"],
    }
    words = shlex.split(build.split(">", 1)[0])
    assert words[:2] == ["python3", "scripts/ecr_push.py"]
    expanded = [os.path.expandvars(w) if w.startswith("$") else w for w in words[2:]]
    args = ecr_push.build_parser().parse_args(
        [env.get(w[1:], w) if w.startswith("$") else w for w in expanded]
    )
    assert args.build and args.tag == "0123456789ab" and args.repository == "sm-text-pipeline"
    (tag_line,) = [c for c in spec["phases"]["pre_build"]["commands"] if "IMAGE_TAG=" in c]

    def tag_for(env: dict[str, str]) -> str:
        script = f'{tag_line}; echo "$IMAGE_TAG"'
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                              check=True)
        return done.stdout.strip()

    tag = tag_for({"CODEBUILD_RESOLVED_SOURCE_VERSION": "0123456789abcdef0123456789abcdef01234567"})
    assert tag == "0123456789ab" == ecr_push.resolve_tag(tag)
    s3_tag = tag_for({"CODEBUILD_BUILD_NUMBER": "17"})  # an S3 source: no commit
    assert s3_tag == "build-17" == ecr_push.resolve_tag(s3_tag)
    assert "--image-detail imageDetail.json" in build  # the name CodePipeline reads
    assert "imageDetail.json" in spec["artifacts"]["files"]
