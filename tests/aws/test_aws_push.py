"""scripts/ecr_push.py against moto's ECR API and a real registry with ECR-style login."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aws_helpers import outputs

from scripts import ecr_push

pytestmark = [pytest.mark.aws, pytest.mark.docker]
REAL_IMAGE = "sm-text-pipeline:latest"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


@pytest.fixture(scope="session")
def tiny_image(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-file image built here (FROM scratch), so push tests need no base image; removed
    (by its exact name) when the session ends."""
    ctx = tmp_path_factory.mktemp("tiny-image")
    (ctx / "hello.txt").write_text("hello from sm-text-pipeline tests\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    name = f"sm-text-pipeline-test-tiny:{uuid.uuid4().hex[:12]}"  # this session's own
    subprocess.run(["docker", "build", "-q", "-t", name, str(ctx)], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "image", "rm", name], capture_output=True, check=False)


def ecr_password(boto: Any) -> tuple[str, str]:
    import base64

    token = boto("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def manifest_digest(registry: dict[str, Any], boto: Any, repo: str, tag: str) -> str:
    url = f"http://{registry['host']}/v2/{repo}/manifests/{tag}"
    resp = requests.head(
        url, auth=ecr_password(boto), headers={"Accept": MANIFEST_TYPES}, timeout=10
    )
    assert resp.status_code == 200, f"{url}: {resp.status_code}"
    return resp.headers["Docker-Content-Digest"]


def push(
    capsys: pytest.CaptureFixture[str], registry: dict[str, Any], image: str, repo: str, tag: str
) -> dict[str, str]:
    args = ["--image", image, "--repository", repo, "--tag", tag]
    try:
        code = ecr_push.main([*args, "--registry-host", registry["host"]])
    finally:  # the remote tags docker keeps locally: untag (the image itself stays)
        refs = [f"{registry['host']}/{repo}:{t}" for t in (tag, "latest")]
        subprocess.run(["docker", "rmi", *refs], capture_output=True, check=False)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {**outputs(captured.out), "_err": captured.err}


def test_push_sets_up_the_repository_logs_in_and_pushes(
    aws_env: dict[str, str],
    boto: Any,
    registry: dict[str, Any],
    tiny_image: str,
    docker_config: Path,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    repo = f"sm-text-test-{unique}"
    out = push(capsys, registry, tiny_image, repo, "0123abcd")
    assert out["IMAGE_URI"] == f"{registry['host']}/{repo}:0123abcd"
    digest = out["IMAGE_DIGEST"].split("@", 1)[1]
    assert digest == manifest_digest(registry, boto, repo, "0123abcd")
    assert digest == manifest_digest(registry, boto, repo, "latest")

    _user, password = ecr_password(boto)
    assert password not in out["_err"], "the registry password reached the log"
    saved = json.loads((docker_config / "config.json").read_text())
    assert registry["host"] in saved["auths"]  # docker login stored it, not our script

    ecr = boto("ecr")
    described = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["imageScanningConfiguration"]["scanOnPush"] is True
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"]["tagStatus"] == "untagged"
    assert lifecycle["rules"][0]["action"] == {"type": "expire"}
    policy = json.loads(ecr.get_repository_policy(repositoryName=repo)["policyText"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert set(statement["Action"]) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    }

    # Idempotent: a second run finds everything in place and writes no repository setting.
    api_calls.clear()
    again = push(capsys, registry, tiny_image, repo, "0123abcd")
    assert again["IMAGE_DIGEST"] == out["IMAGE_DIGEST"]
    writes = {op for _, op, _ in api_calls} - {
        "DescribeRepositories",
        "GetLifecyclePolicy",
        "GetRepositoryPolicy",
        "GetAuthorizationToken",
    }
    assert writes == set(), f"second run changed the repository: {writes}"


def test_push_without_login_is_refused_by_the_registry(
    aws_env: dict[str, str],
    registry: dict[str, Any],
    tiny_image: str,
    docker_config: Path,
    unique: str,
) -> None:
    remote = f"{registry['host']}/sm-text-nologin-{unique}:x"
    subprocess.run(["docker", "tag", tiny_image, remote], check=True)
    before = registry["log"].stat().st_size
    pushed = subprocess.run(["docker", "push", remote], capture_output=True, text=True)
    subprocess.run(["docker", "rmi", remote], capture_output=True, check=False)
    assert pushed.returncode != 0
    assert "no basic auth credentials" in pushed.stderr or "unauthorized" in pushed.stderr
    with registry["log"].open() as log:
        log.seek(before)
        new_lines = log.read().splitlines()
    refused = [line for line in new_lines if '" 401 ' in line and "docker/" in line]
    assert refused, "the registry logged no 401 for docker's attempt"
    upload = requests.post(
        f"http://{registry['host']}/v2/sm-text-nologin-{unique}/blobs/uploads/", timeout=5
    )
    assert upload.status_code == 401
    assert upload.headers["WWW-Authenticate"].startswith("Basic")


def test_push_the_real_image(
    aws_env: dict[str, str],
    boto: Any,
    registry: dict[str, Any],
    docker_available: None,
    docker_config: Path,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    probe = subprocess.run(["docker", "image", "inspect", REAL_IMAGE], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{REAL_IMAGE} is not built (bash scripts/build_image.sh; CI builds it first)")
    out = push(capsys, registry, REAL_IMAGE, "sm-text-pipeline", f"test-{unique}")
    digest = out["IMAGE_DIGEST"].split("@", 1)[1]
    assert digest == manifest_digest(registry, boto, "sm-text-pipeline", f"test-{unique}")


def test_missing_local_image_is_a_clear_error(
    aws_env: dict[str, str],
    registry: dict[str, Any],
    docker_available: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = ecr_push.main(["--image", "no-such-image:nope", "--tag", "x"])
    assert code == 2
    assert "local image no-such-image:nope not found" in capsys.readouterr().err
