"""scripts/endpoints.py against moto: exact container definitions, update, autoscaling, teardown.

moto gaps met here: it drops InferenceExecutionConfig (so Serial mode is asserted on the request
we send, recorded from botocore), every endpoint is InService at once (the waits return at the
first poll), and moto lacks UpdateEndpoint (scripts/localsm/moto_shims.py adds it: the endpoint
moves to the new config at once, with no rolling deployment to watch).
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_helpers import run_endpoints as run
from aws_helpers import sent

pytestmark = pytest.mark.aws

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-text-pipeline:abc123"
NEW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-text-pipeline:def456"
MODEL = "s3://sm-text-test/model/model.tar.gz"
NTM_DATA = "s3://sm-text-test/ntm/output/model.tar.gz"
KNN_DATA = "s3://sm-text-test/knn/output/model.tar.gz"
NTM_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/ntm:1"
KNN_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"


def leftovers(boto: Any, name: str) -> list[str]:
    sm = boto("sagemaker")
    found = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    found += [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    found += [m["ModelName"] for m in sm.list_models()["Models"]]
    return [item for item in found if item == name or item.startswith(f"{name}-")]


def test_classifier_endpoint_has_exactly_one_classify_container(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    name = f"clf-{unique}"
    args = ["create-classifier", "--name", name, "--image", IMAGE, "--model-data", MODEL]
    out = run(capsys, *args, "--role", role_arn)
    assert out["RESULT"] == "created"
    sm = boto("sagemaker")
    model = sm.describe_model(ModelName=out["MODEL_NAME"])
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": MODEL,
        "Environment": {"SERVING_STAGE": "classify", ACCEPT: "application/json"},
    }
    assert model["ExecutionRoleArn"] == role_arn
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"  # moto: at once; SageMaker: minutes
    assert endpoint["EndpointConfigName"] == out["ENDPOINT_CONFIG_NAME"]
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=out["ENDPOINT_CONFIG_NAME"])[
        "ProductionVariants"
    ]
    assert variant["ModelName"] == out["MODEL_NAME"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)

    api_calls.clear()  # the same create again: found, nothing created
    again = run(capsys, *args, "--role", role_arn)
    assert again["RESULT"] == "unchanged" and again["MODEL_NAME"] == out["MODEL_NAME"]
    assert not [op for _, op, _ in api_calls if op.startswith(("Create", "Update", "Delete"))]

    run(capsys, "delete", "--name", name)
    assert leftovers(boto, name) == []


def test_recommender_pipeline_containers_in_order(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    name = f"rec-{unique}"
    out = run(
        capsys,
        "create-pipeline",
        "--name",
        name,
        "--image",
        IMAGE,
        "--model-data",
        MODEL,
        "--ntm-model-data",
        NTM_DATA,
        "--knn-model-data",
        KNN_DATA,
        "--role",
        role_arn,
        "--no-verify",  # no model data behind these URIs: the self-check is tested in tests/e2e
    )
    expected = [
        {
            "ContainerHostname": "ntm-features",
            "Image": IMAGE,
            "ModelDataUrl": MODEL,
            "Environment": {
                "SERVING_STAGE": "ntm-features",
                ACCEPT: "application/x-recordio-protobuf",
            },
        },
        {
            "ContainerHostname": "ntm",
            "Image": NTM_IMAGE,
            "ModelDataUrl": NTM_DATA,
            "Environment": {ACCEPT: "application/json"},
        },
        {
            "ContainerHostname": "topics-to-knn",
            "Image": IMAGE,
            "ModelDataUrl": MODEL,
            "Environment": {"SERVING_STAGE": "topics-to-knn", ACCEPT: "text/csv"},
        },
        {
            "ContainerHostname": "knn",
            "Image": KNN_IMAGE,
            "ModelDataUrl": KNN_DATA,
            "Environment": {ACCEPT: "application/json; verbose=true"},
        },
        {
            "ContainerHostname": "recommend",
            "Image": IMAGE,
            "ModelDataUrl": MODEL,
            "Environment": {"SERVING_STAGE": "recommend", ACCEPT: "application/json",
                            "SERVING_KNN_METRIC": "L2"},  # no training job to read: the default
        },
    ]
    model = boto("sagemaker").describe_model(ModelName=out["MODEL_NAME"])
    assert model["Containers"] == expected
    (request,) = sent(api_calls, "CreateModel")
    assert request["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert request["Containers"] == expected
    # moto drops InferenceExecutionConfig from what it stores; SageMaker returns it.
    assert model.get("InferenceExecutionConfig", {"Mode": "Serial"}) == {"Mode": "Serial"}
    run(capsys, "delete", "--name", name)
    assert leftovers(boto, name) == []


def test_pipeline_model_data_from_training_jobs(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sm = boto("sagemaker")
    jobs = {}
    for algo, image in (("ntm", NTM_IMAGE), ("knn", KNN_IMAGE)):
        job = f"{algo}-{unique}"
        sm.create_training_job(
            TrainingJobName=job,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            RoleArn=role_arn,
            OutputDataConfig={"S3OutputPath": f"s3://sm-text-test/{algo}/"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        jobs[algo] = job
    name = f"rec2-{unique}"
    out = run(
        capsys,
        *["create-pipeline", "--name", name, "--image", IMAGE, "--model-data", MODEL],
        *["--ntm-training-job", jobs["ntm"], "--knn-training-job", jobs["knn"]],
        *["--role", role_arn, "--features-accept", "application/json", "--no-verify"],
    )
    boxes = sm.describe_model(ModelName=out["MODEL_NAME"])["Containers"]
    artifacts = {
        algo: sm.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
        for algo, job in jobs.items()
    }
    assert boxes[1]["ModelDataUrl"] == artifacts["ntm"]
    assert boxes[3]["ModelDataUrl"] == artifacts["knn"]
    assert boxes[0]["Environment"][ACCEPT] == "application/json"
    run(capsys, "delete", "--name", name)


def test_update_autoscale_and_teardown_leave_nothing_behind(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    name = f"upd-{unique}"
    created = run(
        capsys,
        *["create-classifier", "--name", name, "--image", IMAGE, "--model-data", MODEL],
        *["--role", role_arn],
    )
    scaled = run(
        capsys,
        *["autoscale", "--name", name, "--min-instances", "1", "--max-instances", "3"],
        *["--target-invocations", "250"],
    )
    aas = boto("application-autoscaling")
    resource = f"endpoint/{name}/variant/AllTraffic"
    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
        "ScalingPolicies"
    ]
    assert policy["PolicyName"] == scaled["SCALING_POLICY"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 250.0
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }

    api_calls.clear()
    updated = run(capsys, "update", "--name", name, "--image", NEW_IMAGE, "--instance-count", "2")
    assert updated["RESULT"] == "updated"
    sm = boto("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointConfigName"] == updated["ENDPOINT_CONFIG_NAME"]
    assert endpoint["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    new_model = sm.describe_model(ModelName=updated["MODEL_NAME"])
    assert new_model["PrimaryContainer"]["Image"] == NEW_IMAGE
    assert new_model["PrimaryContainer"]["Environment"]["SERVING_STAGE"] == "classify"
    (update_call,) = sent(api_calls, "UpdateEndpoint")
    assert update_call == {
        "EndpointName": name,
        "EndpointConfigName": updated["ENDPOINT_CONFIG_NAME"],
    }
    # the replaced config and model are gone; scaling is back on the updated endpoint
    assert sorted(leftovers(boto, name)) == sorted(
        [name, updated["ENDPOINT_CONFIG_NAME"], updated["MODEL_NAME"]]
    )
    assert created["MODEL_NAME"] != updated["MODEL_NAME"]
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert len(sent(api_calls, "PutScalingPolicy")) == 1

    run(capsys, "delete", "--name", name)
    assert leftovers(boto, name) == []
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert not aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
        "ScalingPolicies"
    ]
    again = run(capsys, "delete", "--name", name)  # idempotent
    assert again["DELETED"] == name


def test_clear_errors_for_missing_role_image_and_region(
    aws_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["create-classifier", "--model-data", MODEL]
    err = run(capsys, *base, "--image", IMAGE, code=2)["_err"]
    assert "no SageMaker execution role" in err
    err = run(capsys, *base, "--role", "arn:aws:iam::123456789012:role/x", code=2)["_err"]
    assert "no image" in err
    err = run(capsys, *base, "--image", IMAGE, "--role", "no-such-role", code=2)["_err"]
    assert "IAM role 'no-such-role' not found" in err
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    err = run(capsys, *base, "--image", IMAGE, code=2)["_err"]
    assert "no AWS region" in err


def test_update_of_a_missing_endpoint_fails(
    aws_env: dict[str, str], unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = run(capsys, "update", "--name", f"nope-{unique}", "--image", IMAGE, code=2)["_err"]
    assert f"no endpoint nope-{unique} to update" in err
