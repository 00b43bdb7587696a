"""List what an endpoint's data capture recorded: each request, its documents and their labels.

    python scripts/capture.py s3://bucket/prefix [--endpoint NAME] [--variant AllTraffic]
                              [--limit 50] [--chars 60 | --json]

Reads the files SageMaker writes for ``endpoints.py ... --data-capture s3://bucket/prefix``,
documented as JSON Lines under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, one
line per captured request::

    {"captureData": {
        "endpointInput": {"observedContentType", "mode": "INPUT", "data", "encoding"},
        "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceTime", ...}, "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` (``data`` is the payload's text: the content type was declared
in CaptureContentTypeHeader, as endpoints.py does) or ``BASE64`` (undeclared types, e.g.
RecordIO-protobuf). Sources:
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html
(awsdocs/amazon-sagemaker-developer-guide@bc87781 doc_source/model-monitor-data-capture-endpoint.md)
and https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CaptureContentTypeHeader.html.

Prints one line per request, in key order (oldest first per endpoint and variant): time, event
id, endpoint/variant, input type, the labels (classifier) or first recommendation ids
(recommender) and the start of the first document (``--chars 0`` hides the text: captures hold
what users sent). ``--json`` prints each request decoded as one JSON object (documents in full).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.aws_cli import make_parser, run_main
from scripts.aws_common import Aws, ScriptError, parse_s3_uri

KEY_PARTS = 7  # endpoint/variant/yyyy/mm/dd/hh/file.jsonl under the prefix


def payload(part: dict[str, Any]) -> bytes:
    """The captured bytes of endpointInput/endpointOutput, whatever the encoding."""
    data = part.get("data", "")
    encoding = str(part.get("encoding", "")).upper()
    if encoding == "BASE64":
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("BASE64 data that is not base64") from None
    if encoding not in ("CSV", "JSON"):
        raise ValueError(f"unknown capture encoding {part.get('encoding')!r}")
    return (data if isinstance(data, str) else json.dumps(data)).encode("utf-8")


def media(part: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """observedContentType as (lower-case type, parameters)."""
    kind, *params = str(part.get("observedContentType") or "").split(";")
    pairs = (p.split("=", 1) for p in params if "=" in p)
    return kind.strip().lower(), {k.strip().lower(): v.strip().strip('"') for k, v in pairs}


def _json_items(body: str, lines: bool) -> list[Any]:
    if lines:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    value = json.loads(body)
    if isinstance(value, dict) and "instances" in value:
        return list(value["instances"])
    if isinstance(value, dict) and "predictions" in value:
        return list(value["predictions"])
    return value if isinstance(value, list) else [value]


def _text(item: Any) -> str:
    return str(item.get("text", "")) if isinstance(item, dict) else str(item)


def documents(part: dict[str, Any]) -> list[str]:
    """The documents of a captured request, read as our stages read them (README, Serving API);
    a type that carries no text (RecordIO) gives one placeholder naming its size."""
    kind, params = media(part)
    raw = payload(part)
    if kind not in ("text/plain", "text/csv", "application/json", "application/jsonlines"):
        return [f"<{len(raw)} bytes of {kind or 'unknown type'}>"]
    body = raw.decode("utf-8", errors="replace")
    if kind == "text/plain":
        return [body]
    if kind == "text/csv":
        rows = [r for r in csv.reader(io.StringIO(body)) if r]
        if params.get("header") == "present" and rows:
            col = rows[0].index("text") if "text" in rows[0] else 0
            return [r[col] if col < len(r) else "" for r in rows[1:]]
        return [r[0] for r in rows]
    return [_text(item) for item in _json_items(body, kind == "application/jsonlines")]


def labels(part: dict[str, Any]) -> list[str]:
    """Per document: the classifier's label, or the recommender's first recommendation ids."""
    kind, _ = media(part)
    body = payload(part).decode("utf-8", errors="replace")
    if kind == "text/csv":
        return [r[0] for r in csv.reader(io.StringIO(body)) if r]
    if kind not in ("application/json", "application/jsonlines"):
        return []
    found = []
    for item in _json_items(body, kind == "application/jsonlines"):
        if isinstance(item, dict) and "recommendations" in item:
            found.append(" ".join(str(r.get("id")) for r in item["recommendations"][:3]))
        elif isinstance(item, dict):
            found.append(str(item.get("label", item.get("error", "?"))))
    return found


def capture_files(aws: Aws, bucket: str, prefix: str) -> list[str]:
    """Every .jsonl key under the prefix, in key order (= time order per endpoint/variant)."""
    s3 = aws.client("s3")
    keys: list[str] = []
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = s3.list_objects_v2(**params)
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")]
        if not page.get("IsTruncated"):
            return keys
        params["ContinuationToken"] = page["NextContinuationToken"]


def requests(aws: Aws, uri: str, endpoint: str | None, variant: str | None
             ) -> Iterator[dict[str, Any]]:
    """Each captured request under ``uri`` decoded: time, id, where, documents, labels."""
    bucket, base = parse_s3_uri(uri.rstrip("/"))
    base = f"{base}/" if base else ""
    prefix = base + (f"{endpoint}/" if endpoint else "") + (
        f"{variant}/" if endpoint and variant else "")
    s3 = aws.client("s3")
    for key in capture_files(aws, bucket, prefix):
        parts = key[len(base):].split("/")
        if len(parts) != KEY_PARTS or (variant and parts[1] != variant):
            continue  # not the documented layout (another tool's object)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                data = event["captureData"]
                inp, out = data.get("endpointInput"), data.get("endpointOutput")
                meta = event.get("eventMetadata", {})
                yield {
                    "time": meta.get("inferenceTime"), "event_id": meta.get("eventId"),
                    "inference_id": meta.get("inferenceId"),
                    "endpoint": parts[0], "variant": parts[1], "file": f"s3://{bucket}/{key}",
                    "input_type": inp and inp.get("observedContentType"),
                    "documents": documents(inp) if inp else [],
                    "output_type": out and out.get("observedContentType"),
                    "labels": labels(out) if out else [],
                }
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ScriptError(
                    f"s3://{bucket}/{key} line {n} is not a capture record: {exc}") from None


def show(row: dict[str, Any], chars: int) -> str:
    docs = row["documents"]
    text = ""
    if chars and docs:
        first = " ".join(docs[0].split())
        text = json.dumps(first[:chars] + ("…" if len(first) > chars else ""), ensure_ascii=False)
    return "  ".join(str(x) for x in (
        row["time"], row["event_id"], f"{row['endpoint']}/{row['variant']}", row["input_type"],
        f"{len(docs)} doc{'s' * (len(docs) != 1)}", "labels=" + ",".join(row["labels"]), text,
    )).rstrip()


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("uri", help="the --data-capture s3://bucket/prefix of the endpoint")
    parser.add_argument("--endpoint", help="only this endpoint's captures")
    parser.add_argument("--variant", help="only this variant's (with --endpoint: AllTraffic ...)")
    parser.add_argument("--limit", type=int, default=50, help="at most N requests (%(default)s)")
    parser.add_argument("--chars", type=int, default=60,
                        help="characters of the first document shown (%(default)s; 0: none)")
    parser.add_argument("--json", action="store_true", help="one decoded JSON object per request")
    return parser


def handler(args: argparse.Namespace) -> int:
    parse_s3_uri(args.uri)
    if args.limit < 1 or args.chars < 0:
        raise ScriptError("--limit must be at least 1 and --chars at least 0", 2)
    aws = Aws.from_args(args)
    count = 0
    for row in requests(aws, args.uri, args.endpoint, args.variant):
        print(json.dumps(row, ensure_ascii=False) if args.json else show(row, args.chars))
        count += 1
        if count >= args.limit:
            break
    print(f"{count} captured request{'s' * (count != 1)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
