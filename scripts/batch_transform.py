"""Bulk scoring from S3 to S3 with a SageMaker batch transform job.

  python scripts/batch_transform.py --model MODEL --input s3://b/docs/ --output s3://b/scores/ \\
      --execution-parameters-url http://127.0.0.1:8080

One record per line in, one result per line out, in order: SplitType=Line, AssembleWith=Line,
BatchStrategy=MultiRecord by default (--split-type, --assemble-with, --strategy change them).
MaxPayloadInMB and MaxConcurrentTransforms come from --max-payload-mb / --max-concurrent, else
from what a running container answers at <url>/execution-parameters ({"MaxConcurrentTransforms":
N, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": M}), else 6 MB and 1. CreateTransformJob
allows MaxPayloadInMB <= 100 and MaxConcurrentTransforms * MaxPayloadInMB <= 100: values you give
that break it are refused; advertised ones keep the payload and lower the concurrency to fit.
Model: --model NAME (the MODEL_NAME endpoints.py printed), or --image and --model-data (and
--role) to create one for SERVING_STAGE=--stage. Waits with progress unless --no-wait and
prints FailureReason when the job fails. An existing --job-name is reported, not restarted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import containers
from scripts.aws_cli import make_parser, require_image, resolve_role, run_main
from scripts.aws_common import Aws, ScriptError, emit, log, parse_s3_uri
from scripts.sm_resources import (
    check_name,
    ensure_model,
    model_definition,
    start_transform_job,
    wait_transform_job,
)

STRATEGIES = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}
# CreateTransformJob, MaxPayloadInMB: "The value of MaxPayloadInMB cannot be greater than 100 MB.
# If you specify the MaxConcurrentTransforms parameter, the value of (MaxConcurrentTransforms *
# MaxPayloadInMB) also cannot exceed 100 MB." (API reference; botocore's sagemaker model)
PAYLOAD_CAP_MB = 100


def execution_parameters(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET <url>/execution-parameters from a running container, checked."""
    full = url.rstrip("/") + "/execution-parameters"
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScriptError(f"cannot read {full}: {exc}", 2) from None
    payload = data.get("MaxPayloadInMB")
    concurrent = data.get("MaxConcurrentTransforms")
    strategy = data.get("BatchStrategy", "MULTI_RECORD")
    if not isinstance(payload, int) or not 0 <= payload <= 100:
        raise ScriptError(f"{full}: MaxPayloadInMB {payload!r} is not 0..100", 2)
    if not isinstance(concurrent, int) or concurrent < 1:
        raise ScriptError(f"{full}: MaxConcurrentTransforms {concurrent!r} is not >= 1", 2)
    if strategy not in STRATEGIES:
        raise ScriptError(f"{full}: BatchStrategy {strategy!r} is not one of {list(STRATEGIES)}")
    log(f"{full}: {data}")
    return {
        "MaxPayloadInMB": payload,
        "MaxConcurrentTransforms": concurrent,
        "BatchStrategy": STRATEGIES[strategy],
    }


def job_limits(args: argparse.Namespace) -> dict[str, Any]:
    """MaxPayloadInMB, MaxConcurrentTransforms, BatchStrategy: flags > container > defaults,
    within CreateTransformJob's rule (payload <= 100, concurrency x payload <= 100)."""
    payload, concurrent = args.max_payload_mb, args.max_concurrent
    if payload is not None and not 0 <= payload <= PAYLOAD_CAP_MB:
        raise ScriptError(f"--max-payload-mb {payload}: MaxPayloadInMB must be 0..100", 2)
    if concurrent is not None and concurrent < 1:
        raise ScriptError(f"--max-concurrent {concurrent}: MaxConcurrentTransforms must be >= 1", 2)
    found = {"MaxPayloadInMB": 6, "MaxConcurrentTransforms": 1, "BatchStrategy": "MultiRecord"}
    if args.execution_parameters_url:
        found.update(execution_parameters(args.execution_parameters_url))
    if payload is not None:
        found["MaxPayloadInMB"] = payload
    if concurrent is not None:
        found["MaxConcurrentTransforms"] = concurrent
    if args.strategy:
        found["BatchStrategy"] = args.strategy
    size, workers = found["MaxPayloadInMB"], found["MaxConcurrentTransforms"]
    if size and workers * size > PAYLOAD_CAP_MB:
        rule = (
            f"MaxConcurrentTransforms {workers} x MaxPayloadInMB {size} = {workers * size} MB; "
            f"CreateTransformJob allows at most {PAYLOAD_CAP_MB}"
        )
        if concurrent is not None:
            raise ScriptError(f"{rule}: lower --max-concurrent or --max-payload-mb", 2)
        found["MaxConcurrentTransforms"] = max(1, PAYLOAD_CAP_MB // size)
        log(f"{rule}: using MaxConcurrentTransforms {found['MaxConcurrentTransforms']}")
    return found


def job_request(args: argparse.Namespace, model: str, job: str) -> dict[str, Any]:
    source = {"S3DataType": args.data_type, "S3Uri": args.input}
    return {
        "TransformJobName": job,
        "ModelName": model,
        **job_limits(args),
        "TransformInput": {
            "DataSource": {"S3DataSource": source},
            "ContentType": args.content_type,
            "SplitType": args.split_type,
            "CompressionType": args.compression,
        },
        "TransformOutput": {
            "S3OutputPath": args.output,
            "Accept": args.accept,
            "AssembleWith": args.assemble_with,
        },
        "TransformResources": {
            "InstanceType": args.instance_type,
            "InstanceCount": args.instance_count,
        },
    }


def resolve_model(aws: Aws, args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    if not args.model_data:
        raise ScriptError("pass --model NAME, or --image and --model-data to create one", 2)
    image = require_image(args.image)
    role = resolve_role(aws, args.role)
    boxes = containers.classifier_containers(image, args.model_data, args.accept)
    boxes[0]["Environment"][containers.ENV_STAGE] = args.stage
    return ensure_model(aws, f"sm-text-batch-{args.stage}", model_definition(role, boxes, None))


def handler(args: argparse.Namespace) -> int:
    parse_s3_uri(args.input)
    parse_s3_uri(args.output)
    aws = Aws.from_args(args)
    model = resolve_model(aws, args)
    job = args.job_name or f"{model[:44]}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_name(job, "transform job", 63)
    start_transform_job(aws, job_request(args, model, job))
    emit("TRANSFORM_JOB_NAME", job)
    if not args.no_wait:
        wait_transform_job(aws, job)
    emit("OUTPUT_S3", args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--input", required=True, help="s3:// prefix of the input records")
    parser.add_argument(
        "--data-type", default="S3Prefix", choices=["S3Prefix", "ManifestFile"],
        help="--input is a prefix (default) or a manifest listing the objects",
    )  # fmt: skip
    parser.add_argument("--output", required=True, help="s3:// prefix for the results")
    parser.add_argument("--model", help="existing SageMaker model name")
    parser.add_argument("--image", help="our image URI, to create a model ($IMAGE_URI)")
    parser.add_argument("--model-data", help="s3://.../model.tar.gz, to create a model")
    parser.add_argument("--stage", default="classify", help="SERVING_STAGE of a created model")
    parser.add_argument("--role", help="execution role for a created model ($SAGEMAKER_ROLE_ARN)")
    parser.add_argument("--job-name", help="default: <model>-<timestamp>")
    parser.add_argument("--content-type", default="text/plain", help="input type (%(default)s)")
    parser.add_argument("--accept", default="application/jsonlines", help="output type")
    parser.add_argument("--execution-parameters-url", help="a running container, e.g. :8080")
    parser.add_argument("--max-payload-mb", type=int, help="MaxPayloadInMB (overrides the URL)")
    parser.add_argument("--max-concurrent", type=int, help="MaxConcurrentTransforms")
    parser.add_argument(
        "--strategy", choices=["MultiRecord", "SingleRecord"],
        help="BatchStrategy (default: the container's, else MultiRecord)",
    )  # fmt: skip
    parser.add_argument(
        "--split-type", default="Line", choices=["Line", "None", "RecordIO", "TFRecord"],
        help="how objects are cut into records (%(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--assemble-with", default="Line", choices=["Line", "None"],
        help="Line: a newline after each response (%(default)s)",
    )  # fmt: skip
    parser.add_argument("--compression", default="None", choices=["None", "Gzip"])
    parser.add_argument("--instance-type", default="ml.m5.large")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--no-wait", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
