"""scripts/capture.py: decoding SageMaker data-capture records, and listing them from (moto) S3.

moto does not run endpoints, so it writes no capture files: the tests write files in the
documented layout and format (model-monitor-data-capture-endpoint.md: JSON Lines under
<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/, captureData.endpointInput/endpointOutput with
observedContentType, mode, data, encoding CSV/JSON/BASE64, and eventMetadata).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from scripts import capture
from scripts.aws_common import ScriptError


def part(mode: str, content_type: str, body: bytes, encoding: str) -> dict[str, Any]:
    data = base64.b64encode(body).decode() if encoding == "BASE64" else body.decode()
    return {"observedContentType": content_type, "mode": mode, "data": data,
            "encoding": encoding}


def record(inp: dict[str, Any], out: dict[str, Any], event: str, at: str) -> str:
    return json.dumps({"captureData": {"endpointInput": inp, "endpointOutput": out},
                       "eventMetadata": {"eventId": event, "inferenceTime": at},
                       "eventVersion": "0"})


PREDICTION = json.dumps({"predictions": [
    {"label": "sci.space", "probability": 0.91, "top_k": []},
    {"label": "rec.autos", "probability": 0.55, "top_k": []}]}).encode()


@pytest.mark.parametrize("encoding", ["JSON", "BASE64"])
def test_json_request_and_prediction_in_either_encoding(encoding: str) -> None:
    body = json.dumps({"instances": ["The shuttle launch", {"text": "My car's engine"}]}).encode()
    inp = part("INPUT", "application/json", body, encoding)
    out = part("OUTPUT", "application/json", PREDICTION, encoding)
    assert capture.documents(inp) == ["The shuttle launch", "My car's engine"]
    assert capture.labels(out) == ["sci.space", "rec.autos"]


def test_text_csv_jsonlines_and_binary_payloads() -> None:
    text = "Pour l'été, 雪 — a post\nwith two lines, and a comma"
    assert capture.documents(part("INPUT", "text/plain; charset=utf-8", text.encode(), "CSV")) \
        == [text]
    rows = b'"first, quoted",x\nsecond\n'
    assert capture.documents(part("INPUT", "text/csv", rows, "CSV")) == ["first, quoted", "second"]
    header = b'id,text\n7,"hello there"\n8,bye\n'
    assert capture.documents(part("INPUT", "text/csv; header=present", header, "BASE64")) == [
        "hello there", "bye"]
    lines = b'"one"\n{"text": "two"}\n\n'
    assert capture.documents(part("INPUT", "application/jsonlines", lines, "JSON")) == [
        "one", "two"]
    out = b'{"label": "a", "probability": 0.5}\n{"label": "b", "probability": 0.4}\n'
    assert capture.labels(part("OUTPUT", "application/jsonlines", out, "JSON")) == ["a", "b"]
    assert capture.labels(part("OUTPUT", "text/csv", b"a,0.5\nb,0.4\n", "CSV")) == ["a", "b"]
    recs = {"predictions": [{"recommendations": [{"id": 4, "title": "t", "score": 0.9},
                                                 {"id": 9, "title": "u", "score": 0.8}]}]}
    rec_out = part("OUTPUT", "application/json", json.dumps(recs).encode(), "BASE64")
    assert capture.labels(rec_out) == ["4 9"]
    blob = part("INPUT", "application/x-recordio-protobuf", b"\x0a\xd7\x23\xce\x00", "BASE64")
    assert capture.documents(blob) == ["<5 bytes of application/x-recordio-protobuf>"]


def test_malformed_parts_are_errors() -> None:
    with pytest.raises(ValueError, match="not base64"):
        capture.payload({"data": "!!!", "encoding": "BASE64"})
    with pytest.raises(ValueError, match="unknown capture encoding"):
        capture.payload({"data": "x", "encoding": "XML"})


# ---- from moto's S3 -------------------------------------------------------------------------


@pytest.mark.aws
def test_lists_requests_and_labels_from_s3(
    aws_env: dict[str, str], boto: Any, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto("s3")
    bucket = f"capture-{unique}"
    s3.create_bucket(Bucket=bucket)
    prefix = "datacapture"
    first = "\n".join([
        record(part("INPUT", "text/plain", b"Orbital mechanics of the shuttle", "CSV"),
               part("OUTPUT", "application/json", PREDICTION, "JSON"), "e1",
               "2026-12-02T00:10:01Z"),
        record(part("INPUT", "application/json", json.dumps(["a", "b"]).encode(), "BASE64"),
               part("OUTPUT", "application/json", PREDICTION, "BASE64"), "e2",
               "2026-12-02T00:10:02Z"),
    ]) + "\n"
    later = record(part("INPUT", "application/jsonlines", b'"x"\n', "JSON"),
                   part("OUTPUT", "text/csv", b"comp.graphics,0.7\n", "CSV"), "e3",
                   "2026-12-02T01:00:00Z")
    other = record(part("INPUT", "text/plain", b"other endpoint", "CSV"),
                   part("OUTPUT", "text/csv", b"misc.forsale,0.6\n", "CSV"), "e4",
                   "2026-12-02T00:00:00Z")
    objects = {
        f"{prefix}/clf/AllTraffic/2026/12/02/00/00-10-001-a.jsonl": first,
        f"{prefix}/clf/AllTraffic/2026/12/02/01/01-00-000-b.jsonl": later,
        f"{prefix}/rec/AllTraffic/2026/12/02/00/00-00-000-c.jsonl": other,
        f"{prefix}/clf/README.txt": "not a capture file",
        f"{prefix}/clf/stray.jsonl": "{}",  # not the documented layout: skipped
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())

    code = capture.main([f"s3://{bucket}/{prefix}", "--endpoint", "clf"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert len(lines) == 3 and "3 captured requests" in captured.err
    assert lines[0] == ('2026-12-02T00:10:01Z  e1  clf/AllTraffic  text/plain  1 doc  '
                        'labels=sci.space,rec.autos  "Orbital mechanics of the shuttle"')
    assert "2 docs  labels=sci.space,rec.autos" in lines[1]
    assert lines[2].startswith("2026-12-02T01:00:00Z  e3") and "labels=comp.graphics" in lines[2]

    code = capture.main([f"s3://{bucket}/{prefix}/", "--json", "--limit", "2", "--chars", "0"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["event_id"] for r in rows] == ["e1", "e2"]  # key order, limited
    assert rows[1]["documents"] == ["a", "b"] and rows[1]["input_type"] == "application/json"
    code = capture.main([f"s3://{bucket}/{prefix}", "--endpoint", "rec", "--chars", "0"])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("labels=misc.forsale") and "other endpoint" not in line

    s3.put_object(Bucket=bucket, Key=f"{prefix}/bad/AllTraffic/2026/12/02/00/x.jsonl",
                  Body=b'{"captureData": 3}\n')
    assert capture.main([f"s3://{bucket}/{prefix}", "--endpoint", "bad"]) == 1
    assert "line 1 is not a capture record" in capsys.readouterr().err


def test_bad_arguments() -> None:
    with pytest.raises(ScriptError):
        capture.handler(capture.build_parser().parse_args(["bucket/prefix"]))
