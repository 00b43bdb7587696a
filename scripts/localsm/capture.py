"""Data capture for the local runtime: what SageMaker writes for an endpoint whose config has a
DataCaptureConfig, written to moto's S3 (moto stores the config but captures nothing).

Per invocation that answered 200, sampled at InitialSamplingPercentage, one JSON Lines record
under ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl`` in the
documented format (docs: model-monitor-data-capture-endpoint.md; scripts/capture.py reads it):
``captureData.endpointInput`` / ``endpointOutput`` with ``observedContentType``, ``mode``,
``data`` and ``encoding`` (``JSON`` / ``CSV`` when the media type is listed in the config's
CaptureContentTypeHeader, else ``BASE64``, as the API reference says), for the CaptureModes the
config names; ``eventMetadata`` with ``eventId``, ``inferenceTime`` and the request's
``inferenceId`` when it sent one; ``eventVersion`` "0".

Differences from SageMaker, on purpose: one object per request, written as soon as the answer
is sent (SageMaker buffers and delivers within minutes); KmsKeyId is not applied (moto).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from scripts.aws_common import parse_s3_uri


def encoding(content_type: str | None, header: dict[str, Any]) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind and kind in (t.lower() for t in header.get("JsonContentTypes", [])):
        return "JSON"
    if kind and kind in (t.lower() for t in header.get("CsvContentTypes", [])):
        return "CSV"
    return "BASE64"


def part(mode: str, content_type: str | None, body: bytes,
         header: dict[str, Any]) -> dict[str, Any]:
    enc = encoding(content_type, header)
    if enc != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            enc = "BASE64"
    if enc == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": data,
            "encoding": enc}


def capture_record(config: dict[str, Any], request: tuple[bytes, str | None],
                   response: tuple[bytes, str | None], inference_id: str | None,
                   now: datetime) -> dict[str, Any]:
    modes = {o.get("CaptureMode") for o in config.get("CaptureOptions", [])}
    header = config.get("CaptureContentTypeHeader") or {}
    data: dict[str, Any] = {}
    if "Input" in modes:
        data["endpointInput"] = part("INPUT", request[1], request[0], header)
    if "Output" in modes:
        data["endpointOutput"] = part("OUTPUT", response[1], response[0], header)
    meta = {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        meta["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}


def capture_key(prefix: str, endpoint: str, variant: str, now: datetime) -> str:
    name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    base = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
    return f"{base}{endpoint}/{variant}/{now:%Y/%m/%d/%H}/{name}"


def write(s3: Any, config: dict[str, Any] | None, endpoint: str, variant: str,
          request: tuple[bytes, str | None], response: tuple[bytes, str | None],
          inference_id: str | None = None) -> str | None:
    """Capture one invocation if the config asks for it (and the sample draws it); the key."""
    if not config or not config.get("EnableCapture", True) or not config.get("CaptureOptions"):
        return None
    if random.random() * 100 >= float(config.get("InitialSamplingPercentage", 0)):
        return None
    now = datetime.now(UTC)
    bucket, prefix = parse_s3_uri(str(config["DestinationS3Uri"]))
    key = capture_key(prefix, endpoint, variant, now)
    line = json.dumps(capture_record(config, request, response, inference_id, now))
    s3.put_object(Bucket=bucket, Key=key, Body=(line + "\n").encode("utf-8"))
    return key
