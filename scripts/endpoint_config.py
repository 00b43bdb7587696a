"""What an endpoint runs on and what it records: the CreateEndpointConfig request of endpoints.py.

One production variant, either on instances (``--instance-type``/``--instance-count``) or on
Serverless Inference (``--serverless [--memory-mb N] [--max-concurrency N]``), plus, for
instance endpoints, optional data capture (``--data-capture s3://... [--capture-percent N]
[--capture-kms-key KEY]``). What AWS would refuse is refused here first, with the reason.

AWS facts relied on (checked 2026-12; cite these when changing the rules below):

* ProductionVariantServerlessConfig: MemorySizeInMB one of 1024, 2048, 3072, 4096, 5120, 6144;
  MaxConcurrency 1..200; ProvisionedConcurrency optional, <= MaxConcurrency.
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariantServerlessConfig.html
* Serverless Inference "Feature exclusions": GPUs, AWS Marketplace model packages, private Docker
  registries, multi-model endpoints, KMS keys, VPC configuration, network isolation, data
  capture, multiple production variants, Model Monitor and inference pipelines are not
  supported; an instance-based endpoint cannot be converted to serverless (ValidationError),
  the reverse is allowed. It also recommends one worker and one copy of the model per container.
  https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html
  (awsdocs/amazon-sagemaker-developer-guide@f3aad01 doc_source/serverless-endpoints.md)
* Invoking a serverless endpoint: payloads up to 4 MB, /ping must answer within 3 minutes of
  the start (model download included), /invocations within 1 minute.
  https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-invoke.html
* DataCaptureConfig: CaptureOptions (CaptureMode Input / Output), DestinationS3Uri,
  InitialSamplingPercentage 0..100, optional KmsKeyId and CaptureContentTypeHeader; without the
  header SageMaker base64-encodes what it captures. CaptureContentTypeHeader: up to 10
  JsonContentTypes and 10 CsvContentTypes, each a bare type/subtype (no parameters).
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CaptureContentTypeHeader.html
"""

from __future__ import annotations

import argparse
from typing import Any

from scripts.aws_common import Aws, ScriptError, parse_s3_uri
from scripts.sm_resources import describe_or_none
from serving.config import ENV_WORKERS

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_INSTANCE_COUNT = 1
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
DEFAULT_MEMORY_MB = 2048
MAX_CONCURRENCY = (1, 200)
DEFAULT_MAX_CONCURRENCY = 5
DEFAULT_CAPTURE_PERCENT = 100
# What our stages read and write (serving/mediatypes.py), declared so capture stores it as text:
# JSON and JSON Lines documents as JSON; CSV rows and plain text as CSV (text kept as it came).
# Anything else (RecordIO-protobuf) is captured base64-encoded, which the reader decodes.
CAPTURE_JSON_TYPES = ["application/json", "application/jsonlines"]
CAPTURE_CSV_TYPES = ["text/csv", "text/plain"]

EXCLUSIONS = "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html"
NO_SERVERLESS_PIPELINE = (
    "Serverless Inference does not support inference pipelines (AWS lists them among its "
    f"feature exclusions: {EXCLUSIONS}); deploy the recommender on instances "
    "(--instance-type/--instance-count)"
)
NO_SERVERLESS_CAPTURE = (
    "Serverless Inference does not support data capture (AWS feature exclusions: "
    f"{EXCLUSIONS}); drop --data-capture or deploy on instances"
)
NO_CONVERSION = (
    "endpoint {name} runs on instances and AWS cannot convert an instance-based endpoint to "
    f"serverless (UpdateEndpoint answers ValidationError; {EXCLUSIONS}): delete it first, "
    "or create the serverless endpoint under another --name"
)


def add_options(p: argparse.ArgumentParser, creating: bool) -> None:
    """Compute and capture options of create-* (``creating``) and update. Defaults are filled in
    by ``variant_for`` so that an explicit value can be told from a default."""
    keep = " (default: the current one)"
    p.add_argument("--instance-type", help="ML instance type" + (
        f" (default {DEFAULT_INSTANCE_TYPE})" if creating else keep))
    p.add_argument("--instance-count", type=int, help="instances" + (
        f" (default {DEFAULT_INSTANCE_COUNT})" if creating else keep))
    p.add_argument("--serverless", action="store_true",
                   help="Serverless Inference (ServerlessConfig) instead of instances")
    p.add_argument("--memory-mb", type=int, choices=SERVERLESS_MEMORY_MB,
                   help=f"serverless memory (default {DEFAULT_MEMORY_MB})")
    p.add_argument("--max-concurrency", type=int, metavar="1..200",
                   help=f"serverless concurrent invocations (default {DEFAULT_MAX_CONCURRENCY})")
    p.add_argument("--data-capture", metavar="S3_URI",
                   help="capture requests and responses under this s3:// prefix (instances only)")
    p.add_argument("--capture-percent", type=int, metavar="0..100",
                   help=f"share of requests captured (default {DEFAULT_CAPTURE_PERCENT})")
    p.add_argument("--capture-kms-key", metavar="KEY",
                   help="KMS key ID/ARN/alias SageMaker encrypts the captured objects with")


def check(args: argparse.Namespace, pipeline: bool, endpoint: str = "",
          current: dict[str, Any] | None = None) -> None:
    """Refuse the combinations AWS refuses, before anything is created (reasons in the module
    docstring); ``current``: the variant an update starts from."""
    serverless_only = [o for o, v in (("--memory-mb", args.memory_mb),
                                      ("--max-concurrency", args.max_concurrency)) if v is not None]
    instance_only = [o for o, v in (("--instance-type", args.instance_type),
                                    ("--instance-count", args.instance_count)) if v is not None]
    capture_only = [o for o, v in (("--capture-percent", args.capture_percent),
                                   ("--capture-kms-key", args.capture_kms_key)) if v is not None]
    if args.serverless:
        if pipeline:
            raise ScriptError(NO_SERVERLESS_PIPELINE, 2)
        if args.data_capture:
            raise ScriptError(NO_SERVERLESS_CAPTURE, 2)
        if instance_only:
            raise ScriptError(f"{' and '.join(instance_only)} cannot go with --serverless "
                              "(a serverless variant has no instances)", 2)
        if current is not None and "ServerlessConfig" not in current:
            raise ScriptError(NO_CONVERSION.format(name=endpoint), 2)
    elif serverless_only and not (current and "ServerlessConfig" in current):
        raise ScriptError(f"{' and '.join(serverless_only)} need --serverless", 2)
    if args.data_capture and current and "ServerlessConfig" in current and not instance_only:
        raise ScriptError(NO_SERVERLESS_CAPTURE, 2)  # update of a serverless endpoint
    if args.max_concurrency is not None and not (
            MAX_CONCURRENCY[0] <= args.max_concurrency <= MAX_CONCURRENCY[1]):
        raise ScriptError("--max-concurrency must be 1..200 (ProductionVariantServerlessConfig)", 2)
    if args.instance_count is not None and args.instance_count < 1:
        raise ScriptError("--instance-count must be at least 1", 2)
    if capture_only and not args.data_capture:
        raise ScriptError(f"{' and '.join(capture_only)} need --data-capture", 2)
    if args.capture_percent is not None and not 0 <= args.capture_percent <= 100:
        raise ScriptError("--capture-percent must be 0..100 (InitialSamplingPercentage)", 2)
    if args.data_capture:
        parse_s3_uri(args.data_capture)


def serverless_env(args: argparse.Namespace) -> dict[str, str]:
    """AWS recommends one worker per serverless container: ours, unless --env sets it."""
    return {ENV_WORKERS: "1"} if args.serverless and ENV_WORKERS not in args.env else {}


def instance_variant(model: str, instance_type: str, count: int, name: str) -> dict[str, Any]:
    return {"VariantName": name, "ModelName": model, "InstanceType": instance_type,
            "InitialInstanceCount": count, "InitialVariantWeight": 1.0}


def serverless_variant(model: str, memory_mb: int, concurrency: int, name: str) -> dict[str, Any]:
    return {"VariantName": name, "ModelName": model,
            "ServerlessConfig": {"MemorySizeInMB": memory_mb, "MaxConcurrency": concurrency}}


def variant_for(args: argparse.Namespace, model: str, name: str, endpoint: str,
                current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The production variant the options ask for; ``current`` (update) fills what they leave
    out: a serverless endpoint stays serverless unless --instance-type/--instance-count move it
    to instances (allowed), an instance endpoint cannot become serverless (refused)."""
    current = current or {}
    was = current.get("ServerlessConfig")
    if args.serverless and current and not was:
        raise ScriptError(NO_CONVERSION.format(name=endpoint), 2)  # check() said it first
    to_instances = args.instance_type is not None or args.instance_count is not None
    if args.serverless or (was and not to_instances):
        was = was or {}
        return serverless_variant(
            model,
            args.memory_mb or was.get("MemorySizeInMB") or DEFAULT_MEMORY_MB,
            args.max_concurrency or was.get("MaxConcurrency") or DEFAULT_MAX_CONCURRENCY,
            name,
        )
    return instance_variant(
        model,
        args.instance_type or current.get("InstanceType") or DEFAULT_INSTANCE_TYPE,
        args.instance_count or current.get("InitialInstanceCount") or DEFAULT_INSTANCE_COUNT,
        name,
    )


def data_capture(args: argparse.Namespace) -> dict[str, Any] | None:
    """DataCaptureConfig for --data-capture: request and response, our content types declared."""
    if not args.data_capture:
        return None
    percent = DEFAULT_CAPTURE_PERCENT if args.capture_percent is None else args.capture_percent
    config: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": args.data_capture.rstrip("/"),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": list(CAPTURE_CSV_TYPES),
                                     "JsonContentTypes": list(CAPTURE_JSON_TYPES)},
    }
    if args.capture_kms_key:
        config["KmsKeyId"] = args.capture_kms_key
    return config


def refuse_conversion(aws: Aws, endpoint: str, serverless: bool) -> None:
    """create-* --serverless onto an existing instance endpoint: AWS's ValidationError, said
    before anything is created."""
    if not serverless:
        return
    current = describe_or_none(aws.client("sagemaker").describe_endpoint, EndpointName=endpoint)
    if any("CurrentServerlessConfig" not in v for v in (current or {}).get("ProductionVariants",
                                                                             [])):
        raise ScriptError(NO_CONVERSION.format(name=endpoint), 2)


def refuse_capture_conflict(args: argparse.Namespace) -> None:
    """update: --no-data-capture cannot go with the options that set capture up."""
    given = [o for o, v in (("--data-capture", args.data_capture),
                            ("--capture-percent", args.capture_percent),
                            ("--capture-kms-key", args.capture_kms_key)) if v is not None]
    if args.no_data_capture and given:
        raise ScriptError(f"--no-data-capture turns capture off; it cannot go with "
                          f"{' or '.join(given)}", 2)


def capture_for_update(args: argparse.Namespace, config: dict[str, Any],
                       variant: dict[str, Any]) -> dict[str, Any] | None:
    """update keeps the current DataCaptureConfig unless --data-capture replaces it or
    --no-data-capture drops it."""
    if args.no_data_capture:
        return None
    capture = data_capture(args) or config.get("DataCaptureConfig") or None
    if capture and "ServerlessConfig" in variant:
        raise ScriptError(NO_SERVERLESS_CAPTURE, 2)
    return capture


def refuse_autoscaling(endpoint: str, desc: dict[str, Any] | None) -> None:
    """autoscale registers DesiredInstanceCount, which a serverless variant does not have."""
    if any("CurrentServerlessConfig" in v for v in (desc or {}).get("ProductionVariants", [])):
        raise ScriptError(f"{endpoint} is serverless: it scales by itself up to MaxConcurrency; "
                          "instance autoscaling does not apply (update --max-concurrency)", 2)
