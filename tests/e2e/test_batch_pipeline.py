"""Batch transform of the 5-container recommendation pipeline, through the local runtime.

AWS runs inference pipelines in batch transform too: the job's ContentType goes to the first
container, each response to the next, its Accept to the last. The same documents through the
realtime endpoint of the same model must give the same recommendations. (The NTM transform job of
``builtin_training.py all --local``, which the stack ran, went through the same runtime.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_stack import DATA_TGZ, Stack

pytestmark = [pytest.mark.aws, pytest.mark.docker, pytest.mark.data, pytest.mark.slow]
JSONL = "application/jsonlines"


def pipeline_model(stack: Stack) -> str:
    import boto3

    sm = boto3.client(
        "sagemaker",
        endpoint_url=stack.env["AWS_ENDPOINT_URL"],
        region_name=stack.env["AWS_REGION"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
    )
    config = sm.describe_endpoint(EndpointName="sm-text-recommender")["EndpointConfigName"]
    variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    return str(variant["ModelName"])


def ids(body: bytes) -> list[list[str]]:
    found = []
    for line in body.splitlines():
        if line.strip():
            doc = json.loads(line)
            rows = doc.get("predictions", [doc])
            found += [[r["id"] for r in row["recommendations"]] for row in rows]
    return found


def test_pipeline_batch_transform_equals_the_realtime_endpoint(stack: Stack) -> None:
    from serving.data import load_splits

    test = load_splits(str(DATA_TGZ)).test
    assert test is not None
    texts = test.texts[::377][:20]
    body = b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)
    bucket = stack.out["MODEL_DATA_URL"].rsplit("/model/", 1)[0]
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.env["AWS_ENDPOINT_URL"],
        region_name=stack.env["AWS_REGION"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
    )
    name = bucket.removeprefix("s3://").split("/", 1)[0]
    s3.put_object(Bucket=name, Key="batch-pipeline/in/docs.jsonl", Body=body)
    model = pipeline_model(stack)
    stack.step(
        "batch_pipeline", "batch_transform",
        *("--model", model, "--job-name", "e2e-batch-pipeline", "--max-concurrent", "1"),
        *("--input", f"s3://{name}/batch-pipeline/in/", "--output", f"s3://{name}/batch-pipeline/out/"),
        *("--content-type", JSONL, "--accept", JSONL), timeout=600,
    )  # fmt: skip
    out = s3.get_object(Bucket=name, Key="batch-pipeline/out/docs.jsonl.out")["Body"].read()
    realtime = stack.runtime_client().invoke_endpoint(
        EndpointName="sm-text-recommender", Body=body, ContentType=JSONL, Accept=JSONL
    )["Body"].read()
    got: list[Any] = ids(out)
    assert len(got) == len(texts)
    assert got == ids(realtime)
    assert all(len(row) > 0 for row in got)
