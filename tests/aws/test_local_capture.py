"""scripts/localsm/capture.py: the local runtime's capture records, read back by scripts/capture.py
(the end-to-end path through a real endpoint is in tests/e2e/test_pipeline.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from scripts import capture as reader
from scripts.endpoint_config import CAPTURE_CSV_TYPES, CAPTURE_JSON_TYPES
from scripts.localsm import capture

CONFIG = {
    "EnableCapture": True, "InitialSamplingPercentage": 100,
    "DestinationS3Uri": "s3://cap-bucket/some/prefix",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": CAPTURE_CSV_TYPES,
                                 "JsonContentTypes": CAPTURE_JSON_TYPES},
}
ANSWER = json.dumps({"predictions": [{"label": "sci.space", "probability": 0.9}]}).encode()


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        return {}


def written(s3: FakeS3) -> tuple[str, dict[str, Any]]:
    ((bucket, key), body), = s3.objects.items()
    assert bucket == "cap-bucket" and body.endswith(b"\n") and body.count(b"\n") == 1
    return key, json.loads(body)


def test_declared_types_are_text_and_read_back() -> None:
    s3 = FakeS3()
    text = "Orbits, shuttles — and «quotes»"
    key = capture.write(s3, CONFIG, "clf", "AllTraffic", (text.encode(), "text/plain"),
                        (ANSWER, "application/json"), inference_id="req-1")
    _, rec = written(s3)
    assert key and re.fullmatch(
        r"some/prefix/clf/AllTraffic/\d{4}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{3}-[0-9a-f-]{36}\.jsonl",
        key)
    inp, out = rec["captureData"]["endpointInput"], rec["captureData"]["endpointOutput"]
    assert inp == {"observedContentType": "text/plain", "mode": "INPUT", "data": text,
                   "encoding": "CSV"}
    assert out["encoding"] == "JSON" and out["mode"] == "OUTPUT"
    assert rec["eventMetadata"]["inferenceId"] == "req-1" and rec["eventVersion"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["eventMetadata"]["inferenceTime"])
    assert reader.documents(inp) == [text] and reader.labels(out) == ["sci.space"]


def test_undeclared_or_binary_payloads_are_base64() -> None:
    s3 = FakeS3()
    no_header = {k: v for k, v in CONFIG.items() if k != "CaptureContentTypeHeader"}
    capture.write(s3, no_header, "clf", "AllTraffic", (b"hello", "text/plain"),
                  (ANSWER, "application/json; charset=utf-8"))
    _, rec = written(s3)
    assert {p["encoding"] for p in rec["captureData"].values()} == {"BASE64"}
    assert reader.documents(rec["captureData"]["endpointInput"]) == ["hello"]
    assert reader.labels(rec["captureData"]["endpointOutput"]) == ["sci.space"]
    s3 = FakeS3()  # declared as text but not UTF-8: kept exactly, as base64
    capture.write(s3, CONFIG, "clf", "AllTraffic", (b"\xff\xfe", "text/csv"),
                  (b"", "text/csv"))
    _, rec = written(s3)
    assert rec["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert reader.payload(rec["captureData"]["endpointInput"]) == b"\xff\xfe"


def test_modes_sampling_and_disabled() -> None:
    s3 = FakeS3()
    inputs_only = {**CONFIG, "CaptureOptions": [{"CaptureMode": "Input"}],
                   "DestinationS3Uri": "s3://cap-bucket"}
    key = capture.write(s3, inputs_only, "rec", "AllTraffic", (b"x", "text/plain"),
                        (ANSWER, "application/json"))
    assert key and key.startswith("rec/AllTraffic/")
    _, rec = written(s3)
    assert list(rec["captureData"]) == ["endpointInput"]
    none = FakeS3()
    for config in ({**CONFIG, "InitialSamplingPercentage": 0}, {**CONFIG, "EnableCapture": False},
                   {}, None):
        for _ in range(20):
            assert capture.write(none, config, "clf", "AllTraffic", (b"x", "text/plain"),
                                 (ANSWER, "application/json")) is None
    assert none.objects == {}
    half = FakeS3()
    for _ in range(400):
        capture.write(half, {**CONFIG, "InitialSamplingPercentage": 50}, "clf", "AllTraffic",
                      (b"x", "text/plain"), (ANSWER, "application/json"))
    assert 120 < len(half.objects) < 280  # binomial(400, 0.5): far outside 6 sigma otherwise
