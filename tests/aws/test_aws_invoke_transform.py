"""scripts/invoke.py and scripts/batch_transform.py.

moto gaps met here: invoke_endpoint answers canned data for any endpoint (even a missing one), so
these tests check what we send, not what a model answers; moto never raises ModelError, so that
path uses botocore's Stubber with the error SageMaker's runtime returns (HTTP 424 with
OriginalStatusCode / OriginalMessage / LogStreamArn). A transform job is Completed at once and
writes nothing; its request is what is checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import outputs, run_script

from scripts import batch_transform, invoke
from scripts.aws_common import Aws

pytestmark = pytest.mark.aws


def test_invoke_sends_file_and_json_lines(
    aws_env: dict[str, str],
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("the shuttle reached orbit")
    argv = ["--endpoint", "e", "--input", str(doc), "--content-type", "text/plain"]
    assert invoke.main([*argv, "--accept", "application/jsonlines"]) == 0
    assert capsysbinary.readouterr().out == b"body\n"  # moto's canned answer
    ((_, _, params),) = api_calls
    assert params["Body"] == b"the shuttle reached orbit"
    assert (params["ContentType"], params["Accept"]) == ("text/plain", "application/jsonlines")

    lines = tmp_path / "docs.jsonl"
    lines.write_text('{"instances": ["a"]}\n\n{"instances": ["b"]}\n')
    api_calls.clear()
    assert invoke.main(["--endpoint", "e", "--jsonl", str(lines)]) == 0
    assert capsysbinary.readouterr().out == b"body\nbody\n"
    assert [p["Body"] for _, _, p in api_calls] == [
        b'{"instances": ["a"]}',
        b'{"instances": ["b"]}',
    ]
    assert {p["ContentType"] for _, _, p in api_calls} == {"application/json"}


def test_invoke_as_a_script_reads_stdin(aws_env: dict[str, str]) -> None:
    done = run_script("invoke", "--endpoint", "e", env=dict(os.environ), stdin='{"instances":[]}')
    assert done.returncode == 0, done.stderr
    assert done.stdout == "body\n"


def test_model_error_prints_the_containers_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stub = Stubber(runtime)
    container_message = '{"code": "unsupported_media_type", "message": "use text/plain"}'
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error (415) from primary with message ...",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": 415,
            "OriginalMessage": container_message,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x",
        },
    )
    stub.activate()
    monkeypatch.setattr(Aws, "client", lambda self, service: runtime)
    code = invoke.main(["--region", "us-east-1", "--endpoint", "e", "--input", os.devnull])
    err = capsys.readouterr().err
    assert code == 1
    assert f"the model container answered 415: {container_message}" in err
    assert "log stream: arn:aws:logs:" in err
    stub.assert_no_pending_responses()


@pytest.fixture
def execution_parameters_url(
    server_factory: Any, tiny_model_dir: Path
) -> tuple[str, dict[str, Any]]:
    """A running server of ours (the serving package on 127.0.0.1) and what it advertises."""
    import requests

    server = server_factory(tiny_model_dir, "classify", env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "3"})
    advertised = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
    return server.url, advertised


def transform(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    code = batch_transform.main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {**outputs(captured.out), "_err": captured.err}


def test_batch_transform_takes_limits_from_the_container(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    execution_parameters_url: tuple[str, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, advertised = execution_parameters_url
    assert advertised["BatchStrategy"] == "MULTI_RECORD"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-text-pipeline:abc"
    argv = ["--input", "s3://in-bucket/docs/", "--output", "s3://out-bucket/scores/"]
    argv += ["--image", image, "--model-data", "s3://b/model.tar.gz", "--role", role_arn]
    out = transform(capsys, *argv, "--execution-parameters-url", url, "--job-name", f"bt-{unique}")
    sm = boto("sagemaker")
    job = sm.describe_transform_job(TransformJobName=out["TRANSFORM_JOB_NAME"])
    assert job["TransformJobStatus"] == "Completed"  # moto: at once, nothing written
    assert job["MaxPayloadInMB"] == advertised["MaxPayloadInMB"]
    assert job["MaxConcurrentTransforms"] == advertised["MaxConcurrentTransforms"]
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://in-bucket/docs/"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformOutput"]["S3OutputPath"] == "s3://out-bucket/scores/"
    model = sm.describe_model(ModelName=job["ModelName"])
    assert model["PrimaryContainer"]["Environment"]["SERVING_STAGE"] == "classify"

    # a flag beats the container; an existing job name is not started again
    again = transform(
        capsys,
        *argv,
        "--execution-parameters-url",
        url,
        "--max-payload-mb",
        "1",
        "--job-name",
        f"bt2-{unique}",
    )
    assert (
        sm.describe_transform_job(TransformJobName=again["TRANSFORM_JOB_NAME"])["MaxPayloadInMB"]
        == 1
    )
    third = transform(capsys, *argv, "--job-name", f"bt2-{unique}")
    assert f"transform job bt2-{unique} exists: not starting it again" in third["_err"]


def test_bad_execution_parameters_url_is_a_clear_error(
    aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", "m", "--input", "s3://a/b/", "--output", "s3://a/c/"]
    code = batch_transform.main([*argv, "--execution-parameters-url", "http://127.0.0.1:9"])
    assert code == 2
    assert "cannot read http://127.0.0.1:9/execution-parameters" in capsys.readouterr().err


@pytest.mark.docker
def test_batch_transform_reads_the_real_container(
    aws_env: dict[str, str],
    boto: Any,
    docker_available: None,
    tiny_model_dir: Path,
    unique: str,
    role_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The image itself, serving on 127.0.0.1, is where the payload size comes from."""
    import subprocess
    import time

    import requests

    image = os.environ.get("SM_TEST_IMAGE", "sm-text-pipeline:latest")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        pytest.skip(f"{image} is not built (bash scripts/build_image.sh; CI builds it first)")
    run = ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080"]
    run += ["-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1", "-e", "SAGEMAKER_MAX_PAYLOAD_IN_MB=4"]
    run += ["-v", f"{tiny_model_dir}:/opt/ml/model:ro", image, "serve"]
    started = subprocess.run(
        run,
        capture_output=True,
        text=True,
        check=True,
    )
    container = started.stdout.strip()
    try:
        port = (
            subprocess.run(
                ["docker", "port", container, "8080"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        advertised = requests.get(f"{url}/execution-parameters", timeout=5).json()
        box = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"}
        boto("sagemaker").create_model(
            ModelName=f"m-{unique}", ExecutionRoleArn=role_arn, PrimaryContainer=box
        )  # CreateTransformJob needs an existing model
        argv = ["--model", f"m-{unique}", "--input", "s3://in/x/", "--output", "s3://out/y/"]
        out = transform(capsys, *argv, "--execution-parameters-url", url)
    finally:
        subprocess.run(["docker", "stop", "-t", "5", container], capture_output=True, check=False)
    job = boto("sagemaker").describe_transform_job(TransformJobName=out["TRANSFORM_JOB_NAME"])
    assert job["MaxPayloadInMB"] == advertised["MaxPayloadInMB"]
    assert job["MaxConcurrentTransforms"] == advertised["MaxConcurrentTransforms"]
