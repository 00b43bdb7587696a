"""scripts/endpoint_config.py through endpoints.py: serverless and instance variants, data capture.

Three witnesses for each request: the dry run's printed JSON (exact parameters, no AWS at all),
botocore's own ParamValidator against the sagemaker service model (what the SDK would refuse),
and moto in server mode (what a CreateEndpointConfig stores and DescribeEndpointConfig returns).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_helpers import no_aws_config, sent
from aws_helpers import run_endpoints as run
from botocore.validate import ParamValidator

from scripts import endpoints
from scripts.endpoint_config import CAPTURE_CSV_TYPES, CAPTURE_JSON_TYPES, EXCLUSIONS

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-text-pipeline:abc123"
MODEL = "s3://sm-text-test/model/model.tar.gz"
ROLE = "arn:aws:iam::123456789012:role/sm"
PIPELINE = ["--ntm-model-data", "s3://b/n.tar.gz", "--knn-model-data", "s3://b/k.tar.gz"]
CAPTURE_HEADER = {"CsvContentTypes": ["text/csv", "text/plain"],
                  "JsonContentTypes": ["application/json", "application/jsonlines"]}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, no_network_no_commands: list[str]) -> list[str]:
    no_aws_config(monkeypatch)
    return no_network_no_commands


def dry_calls(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    """The dry run's printed requests, by operation (the last one of each)."""
    code = endpoints.main([*argv, "--dry-run", "--image", IMAGE, "--model-data", MODEL,
                           "--role", ROLE])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    calls = {}
    for line in captured.out.splitlines():
        if line.startswith("[dry-run] sagemaker."):
            op, params = line.split(" ", 2)[1:]
            calls[op.split(".", 1)[1]] = json.loads(params)
    return calls


def botocore_errors(operation: str, params: dict[str, Any]) -> str:
    """What botocore's client-side validation says of these parameters ('' = valid)."""
    model = boto3.Session(region_name="eu-west-1").client("sagemaker").meta.service_model
    shape = model.operation_model(operation).input_shape
    return str(ParamValidator().validate(params, shape).generate_report())


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = endpoints.main([*argv, "--image", IMAGE, "--model-data", MODEL, "--role", ROLE])
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_serverless_classifier_request_is_exact_and_valid(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    calls = dry_calls(capsys, "create-classifier", "--serverless", "--memory-mb", "3072",
                      "--max-concurrency", "20")
    config = calls["create_endpoint_config"]
    assert config == {
        "EndpointConfigName": config["EndpointConfigName"],
        "ProductionVariants": [{
            "VariantName": "AllTraffic", "ModelName": calls["create_model"]["ModelName"],
            "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 20},
        }],
    }
    env = calls["create_model"]["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"  # AWS: one worker per serverless container
    assert botocore_errors("CreateEndpointConfig", config) == ""
    assert botocore_errors("CreateModel", calls["create_model"]) == ""
    broken = json.loads(json.dumps(config))  # the validator is not vacuous
    broken["ProductionVariants"][0]["ServerlessConfig"] = {"MemorySizeInMB": 512}
    report = botocore_errors("CreateEndpointConfig", broken)
    assert "MaxConcurrency" in report and "valid min value: 1024" in report
    assert offline == []
    defaults = dry_calls(capsys, "create-classifier", "--serverless", "--name", "other")
    variant = defaults["create_endpoint_config"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    # --env wins over the serverless default of one worker
    own = dry_calls(capsys, "create-classifier", "--serverless", "--env",
                    "SAGEMAKER_MODEL_SERVER_WORKERS=2")
    assert own["create_model"]["PrimaryContainer"]["Environment"][
        "SAGEMAKER_MODEL_SERVER_WORKERS"] == "2"


def test_instance_defaults_and_options(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    calls = dry_calls(capsys, "create-classifier")
    (variant,) = calls["create_endpoint_config"]["ProductionVariants"]
    assert {k: v for k, v in variant.items() if k != "ModelName"} == {
        "VariantName": "AllTraffic", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in calls["create_model"]["PrimaryContainer"][
        "Environment"]
    calls = dry_calls(capsys, "create-classifier", "--instance-type", "ml.c5.xlarge",
                      "--instance-count", "3")
    (variant,) = calls["create_endpoint_config"]["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 3)
    assert "DataCaptureConfig" not in calls["create_endpoint_config"]
    assert botocore_errors("CreateEndpointConfig", calls["create_endpoint_config"]) == ""


@pytest.mark.parametrize("command", ["create-classifier", "create-pipeline"])
def test_data_capture_request_is_exact_and_valid(
    capsys: pytest.CaptureFixture[str], offline: list[str], command: str
) -> None:
    extra = PIPELINE if command == "create-pipeline" else []
    calls = dry_calls(capsys, command, *extra, "--data-capture", "s3://capture-bucket/cap/",
                      "--capture-percent", "25", "--capture-kms-key", "alias/capture")
    config = calls["create_endpoint_config"]
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": "s3://capture-bucket/cap",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": CAPTURE_HEADER,
        "KmsKeyId": "alias/capture",
    }
    assert "InstanceType" in config["ProductionVariants"][0]
    assert botocore_errors("CreateEndpointConfig", config) == ""
    plain = dry_calls(capsys, command, *extra, "--data-capture", "s3://capture-bucket/cap")
    capture = plain["create_endpoint_config"]["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 100 and "KmsKeyId" not in capture


def test_declared_capture_types_are_what_the_stages_speak_and_fit_aws_pattern() -> None:
    import re

    from serving.mediatypes import JSON, JSONLINES, TEXT_CSV, TEXT_PLAIN

    assert set(CAPTURE_JSON_TYPES) == {JSON, JSONLINES}
    assert set(CAPTURE_CSV_TYPES) == {TEXT_CSV, TEXT_PLAIN}
    pattern = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*\/[a-zA-Z0-9](-*[a-zA-Z0-9.])*$")
    assert all(pattern.match(t) for t in CAPTURE_JSON_TYPES + CAPTURE_CSV_TYPES)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["create-pipeline", "--serverless", *PIPELINE], "does not support inference pipelines"),
        (["create-classifier", "--serverless", "--data-capture", "s3://b/c"],
         "does not support data capture"),
        (["create-classifier", "--serverless", "--instance-type", "ml.m5.large"],
         "--instance-type cannot go with --serverless"),
        (["create-classifier", "--memory-mb", "2048"], "--memory-mb need --serverless"),
        (["create-classifier", "--serverless", "--max-concurrency", "201"], "1..200"),
        (["create-classifier", "--serverless", "--max-concurrency", "0"], "1..200"),
        (["create-classifier", "--data-capture", "s3://b/c", "--capture-percent", "101"],
         "0..100"),
        (["create-classifier", "--capture-percent", "5"], "need --data-capture"),
        (["create-classifier", "--data-capture", "b/c"], "not an S3 URI"),
        (["create-classifier", "--instance-count", "0"], "at least 1"),
    ],
)
def test_refusals_say_why_and_call_nothing(
    capsys: pytest.CaptureFixture[str], offline: list[str], argv: list[str], says: str
) -> None:
    err = refused(capsys, *argv)
    assert says in err
    if "does not support" in says:
        assert EXCLUSIONS in err  # the AWS page that says so
    assert offline == []


def test_update_refuses_capture_on_and_off_at_once(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    code = endpoints.main(["update", "--name", "x", "--no-data-capture", "--data-capture",
                           "s3://b/c", "--capture-percent", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot go with --data-capture or --capture-percent" in err, err
    assert offline == []


def test_memory_outside_aws_sizes_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        endpoints.main(["create-classifier", "--serverless", "--memory-mb", "1536"])
    assert exit_info.value.code == 2
    assert "1024, 2048, 3072, 4096, 5120, 6144" in capsys.readouterr().err


# ---- moto: what CreateEndpointConfig stores, what update and autoscale do with it -------------


@pytest.mark.aws
def test_serverless_in_moto_update_and_the_refused_conversions(
    aws_env: dict[str, str], boto: Any, role_arn: str, unique: str,
    capsys: pytest.CaptureFixture[str], api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    name = f"sls-{unique}"
    base = ["--image", IMAGE, "--model-data", MODEL, "--role", role_arn]
    out = run(capsys, "create-classifier", "--name", name, *base, "--serverless",
              "--memory-mb", "1024", "--max-concurrency", "2")
    assert out["RESULT"] == "created"
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert request == {"EndpointConfigName": out["ENDPOINT_CONFIG_NAME"], "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": out["MODEL_NAME"],
         "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}}]}
    sm = boto("sagemaker")
    (stored,) = sm.describe_endpoint_config(
        EndpointConfigName=out["ENDPOINT_CONFIG_NAME"])["ProductionVariants"]
    assert stored["ServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    assert "InstanceType" not in stored

    # update keeps it serverless and changes only what it is told
    api_calls.clear()
    run(capsys, "update", "--name", name, "--memory-mb", "4096")  # --serverless implied
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert request["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 4096, "MaxConcurrency": 2}
    api_calls.clear()
    run(capsys, "update", "--name", name, "--image", IMAGE.replace("abc123", "def456"),
        "--serverless", "--max-concurrency", "3")
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert request["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 4096, "MaxConcurrency": 3}
    assert "DataCaptureConfig" not in request

    # autoscaling of instances does not apply; capture is refused on a serverless endpoint
    err = run(capsys, "autoscale", "--name", name, code=2)["_err"]
    assert "is serverless" in err
    api_calls.clear()
    err = run(capsys, "update", "--name", name, "--data-capture", "s3://b/c", code=2)["_err"]
    assert "does not support data capture" in err
    assert not [op for _, op, _ in api_calls if op.startswith(("Create", "Update"))]

    # an instance endpoint cannot become serverless, on create or on update; nothing is made
    inst = f"inst-{unique}"
    run(capsys, "create-classifier", "--name", inst, *base)
    api_calls.clear()
    for argv in (["create-classifier", "--name", inst, *base, "--serverless"],
                 ["update", "--name", inst, "--serverless"]):
        err = run(capsys, *argv, code=2)["_err"]
        assert "cannot convert an instance-based endpoint to serverless" in err
    err = run(capsys, "update", "--name", inst, "--memory-mb", "2048", code=2)["_err"]
    assert "--memory-mb need --serverless" in err
    assert not [op for _, op, _ in api_calls if op.startswith(("Create", "Update"))]

    # serverless -> instances is allowed (AWS: one way only)
    api_calls.clear()
    run(capsys, "update", "--name", name, "--instance-type", "ml.c5.large")
    (request,) = sent(api_calls, "CreateEndpointConfig")
    variant = request["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 1)
    assert "ServerlessConfig" not in variant
    for endpoint in (name, inst):
        run(capsys, "delete", "--name", endpoint)


@pytest.mark.aws
def test_data_capture_in_moto_is_kept_by_update_and_dropped_on_request(
    aws_env: dict[str, str], boto: Any, role_arn: str, unique: str,
    capsys: pytest.CaptureFixture[str], api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    name = f"cap-{unique}"
    out = run(capsys, "create-classifier", "--name", name, "--image", IMAGE, "--model-data",
              MODEL, "--role", role_arn, "--data-capture", f"s3://sm-text-test/capture/{unique}",
              "--capture-percent", "50")
    expected = {
        "EnableCapture": True, "InitialSamplingPercentage": 50,
        "DestinationS3Uri": f"s3://sm-text-test/capture/{unique}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": CAPTURE_HEADER,
    }
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert request["DataCaptureConfig"] == expected
    sm = boto("sagemaker")
    stored = sm.describe_endpoint_config(EndpointConfigName=out["ENDPOINT_CONFIG_NAME"])
    assert stored["DataCaptureConfig"] == expected

    api_calls.clear()  # a new image: a new config that still captures
    run(capsys, "update", "--name", name, "--image", IMAGE.replace("abc123", "def456"))
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert request["DataCaptureConfig"] == expected
    api_calls.clear()
    run(capsys, "update", "--name", name, "--no-data-capture")
    (request,) = sent(api_calls, "CreateEndpointConfig")
    assert "DataCaptureConfig" not in request
    run(capsys, "delete", "--name", name)
