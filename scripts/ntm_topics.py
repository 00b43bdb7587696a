"""Topic vectors of the training documents from a trained NTM, as k-NN training data.

A model from the NTM training job (its image and artifacts), a batch transform of the training
data (SplitType RecordIO, Accept application/jsonlines, AssembleWith Line), then CSV rows
"index,w1..wK" (label = document index, see scripts/knn_data.py) uploaded next to the output.
Each part's output lines are checked against its RecordIO record count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from scripts import knn_data
from scripts.aws_cli import resolve_role
from scripts.aws_common import Aws, ScriptError, emit, is_not_found, log, parse_s3_uri
from scripts.builtin_images import image_uri
from scripts.sm_resources import (
    describe_or_none,
    ensure_model,
    model_definition,
    stamp,
    start_transform_job,
    wait_transform_job,
)

RECORDIO = "application/x-recordio-protobuf"


def s3_read(aws: Aws, uri: str) -> bytes:
    bucket, key = parse_s3_uri(uri)
    return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_list(aws: Aws, prefix_uri: str) -> list[str]:
    bucket, prefix = parse_s3_uri(prefix_uri)
    pages = aws.client("s3").get_paginator("list_objects_v2") if not aws.dry_run else None
    keys: list[str] = []
    for page in pages.paginate(Bucket=bucket, Prefix=prefix) if pages else []:
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(keys, key=lambda k: knn_data.natural_key(k.rsplit("/", 1)[-1]))


def topics(aws: Aws, args: argparse.Namespace, ntm_job: str) -> dict[str, Any]:
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_training_job, TrainingJobName=ntm_job) or {}
    if not desc and not aws.dry_run:
        raise ScriptError(f"NTM training job {ntm_job} not found", 2)
    if desc and desc.get("TrainingJobStatus") != "Completed":
        status, reason = desc.get("TrainingJobStatus"), desc.get("FailureReason") or ""
        raise ScriptError(f"NTM training job {ntm_job} is {status}, not Completed. {reason}", 2)
    image = desc.get("AlgorithmSpecification", {}).get("TrainingImage") or image_uri(
        "ntm", aws.region
    )
    artifacts = desc.get("ModelArtifacts", {}).get("S3ModelArtifacts", f"s3://<{ntm_job}>")
    role = desc.get("RoleArn") or resolve_role(aws, args.role)
    box = {"Image": image, "ModelDataUrl": artifacts}
    model = ensure_model(aws, "sm-text-ntm", model_definition(role, [box], None))
    job = args.transform_job_name or f"sm-text-ntm-topics-{stamp()}"
    out = f"{args.output.rstrip('/')}/topics/{job}/"
    start_transform_job(aws, dict(
        TransformJobName=job,
        ModelName=model,
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=6,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args.train}},
            "ContentType": RECORDIO,
            "SplitType": "RecordIO",
        },
        TransformOutput={
            "S3OutputPath": out,
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": args.transform_instance_type, "InstanceCount": 1},
    ))
    wait_transform_job(aws, job)
    knn_train = f"{args.output.rstrip('/')}/knn-train/{job}/"
    if aws.dry_run:
        log(f"[dry-run] would turn {out}*.out into {knn_train}train.csv")
        return {"knn_train": knn_train, "documents": None, "dim": None}
    text, documents, dim = topics_to_csv(aws, args.train, out)
    bucket, key = parse_s3_uri(knn_train + "train.csv")
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/csv")
    log(f"{documents} documents x {dim} topics -> s3://{bucket}/{key}")
    emit("TOPICS_S3", out)
    emit("KNN_TRAIN_S3", knn_train)
    emit("NUM_DOCUMENTS", documents)
    return {"knn_train": knn_train, "documents": documents, "dim": dim}


def topics_to_csv(aws: Aws, train: str, out: str) -> tuple[str, int, int]:
    parts = s3_list(aws, train)
    if not parts:
        raise ScriptError(f"no training data under {train}", 2)
    bucket, _ = parse_s3_uri(train)
    chunks: list[str] = []
    index = dim = 0
    for key in parts:
        name = key.rsplit("/", 1)[-1]
        try:
            records = knn_data.count_records(s3_read(aws, f"s3://{bucket}/{key}"))
        except knn_data.DataError as exc:
            raise ScriptError(f"s3://{bucket}/{key} is not RecordIO training data: {exc}") from None
        try:
            vectors = knn_data.topic_vectors(s3_read(aws, f"{out}{name}.out").decode("utf-8"))
        except knn_data.DataError as exc:
            raise ScriptError(f"{out}{name}.out: {exc}") from None
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            raise ScriptError(f"the transform wrote no {out}{name}.out for {key}") from None
        if len(vectors) != records:
            raise ScriptError(f"{name}: {records} records but {len(vectors)} topic vectors")
        text, dim = knn_csv_checked(vectors, index, dim)
        chunks.append(text)
        index += records
    return "".join(chunks), index, dim


def knn_csv_checked(vectors: list[list[float]], first: int, dim: int) -> tuple[str, int]:
    text, found = knn_data.knn_csv(vectors, first)
    if dim and found and found != dim:
        raise ScriptError(f"topic vectors change size: {dim} then {found}")
    return text, found or dim
