"""--dry-run: every script prints the calls it would make and makes none.

Asserted with a stub, not by trusting the output: botocore's Endpoint.make_request (every HTTP
request any client sends) and subprocess.run/Popen (docker, git, build script) are replaced by
functions that record and fail. No credentials are set; a dry run needs only a region.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_helpers import no_aws_config

from scripts import (
    batch_transform,
    builtin_training,
    ecr_push,
    endpoints,
    invoke,
    upload_artifacts,
)

pytestmark = pytest.mark.aws

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-text-pipeline:abc"
ROLE = "arn:aws:iam::123456789012:role/sm"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, no_network_no_commands: list[str]) -> list[str]:
    no_aws_config(monkeypatch, "ECR_REGISTRY_HOST")
    return no_network_no_commands


def planned(capsys: pytest.CaptureFixture[str], code: int) -> list[str]:
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [line for line in captured.out.splitlines() if line.startswith("[dry-run] ")]


def ops(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if not line.startswith("[dry-run] $")]


def test_push(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    code = ecr_push.main(["--dry-run", "--build", "--tag", "abc123", "--registry-host", "r:5000"])
    lines = planned(capsys, code)
    assert offline == []
    assert "[dry-run] $ bash scripts/build_image.sh" in lines
    assert ops(lines) == [
        "ecr.describe_repositories",
        "ecr.create_repository",
        "ecr.get_lifecycle_policy",
        "ecr.put_lifecycle_policy",
        "ecr.get_repository_policy",
        "ecr.set_repository_policy",
        "ecr.get_authorization_token",
    ]
    login = next(line for line in lines if "docker login" in line)
    assert "--password-stdin r:5000" in login and "secret on stdin" in login
    assert "[dry-run] $ docker push r:5000/sm-text-pipeline:abc123" in lines
    assert "[dry-run] $ docker push r:5000/sm-text-pipeline:latest" in lines


def test_upload(capsys: pytest.CaptureFixture[str], offline: list[str], tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    ntm = tmp_path / "output" / "ntm"
    (ntm / "train").mkdir(parents=True)
    (ntm / "auxiliary").mkdir()
    (ntm / "train" / "train_part0.pbr").write_bytes(b"")
    (ntm / "auxiliary" / "vocab.txt").write_text("a\n")
    code = upload_artifacts.main(
        ["--dry-run", "--model-dir", str(model), "--output-data-dir", str(ntm.parent)]
    )
    lines = planned(capsys, code)
    assert offline == []
    assert ops(lines).count("s3.upload_file") == 3
    assert "s3.create_bucket" in ops(lines)


def test_endpoints(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    common = ["--dry-run", "--image", IMAGE, "--model-data", "s3://b/m.tar.gz", "--role", ROLE]
    lines = planned(capsys, endpoints.main(["create-classifier", *common]))
    assert ops(lines) == [
        "sagemaker.describe_model",
        "sagemaker.create_model",
        "sagemaker.describe_endpoint_config",
        "sagemaker.create_endpoint_config",
        "sagemaker.describe_endpoint",
        "sagemaker.create_endpoint",
    ]
    pipeline = ["create-pipeline", *common]
    pipeline += ["--ntm-model-data", "s3://b/n.tar.gz", "--knn-model-data", "s3://b/k.tar.gz"]
    lines = planned(capsys, endpoints.main(pipeline))
    create = next(line for line in lines if "sagemaker.create_model" in line)
    params = json.loads(create.split(" ", 2)[2])
    assert params["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert [c["ContainerHostname"] for c in params["Containers"]] == [
        "ntm-features",
        "ntm",
        "topics-to-knn",
        "knn",
        "recommend",
    ]
    assert params["Containers"][1]["Image"].startswith("438346466558.dkr.ecr.eu-west-1.")
    scale = ["autoscale", "--dry-run", "--name", "x", "--max-instances", "2"]
    assert ops(planned(capsys, endpoints.main(scale)))[-2:] == [
        "application-autoscaling.register_scalable_target",
        "application-autoscaling.put_scaling_policy",
    ]
    assert "sagemaker.describe_endpoint" in ops(
        planned(capsys, endpoints.main(["delete", "--dry-run", "--name", "x"]))
    )
    assert offline == []


def test_training_invoke_transform(
    capsys: pytest.CaptureFixture[str], offline: list[str], tmp_path: Path
) -> None:
    train = ["all", "--dry-run", "--output", "s3://b/o", "--train", "s3://b/d/train/"]
    train += ["--auxiliary", "s3://b/d/auxiliary/", "--role", ROLE]
    lines = planned(capsys, builtin_training.main(train))
    assert ops(lines).count("sagemaker.create_training_job") == 2
    assert "sagemaker.create_transform_job" in ops(lines)
    body = tmp_path / "doc.txt"
    body.write_text("a document")
    lines = planned(capsys, invoke.main(["--dry-run", "--endpoint", "e", "--input", str(body)]))
    assert ops(lines) == ["sagemaker-runtime.invoke_endpoint"]
    transform = ["--dry-run", "--model", "m", "--input", "s3://b/in/", "--output", "s3://b/out/"]
    lines = planned(capsys, batch_transform.main(transform))
    assert "sagemaker.create_transform_job" in ops(lines)
    assert offline == []
