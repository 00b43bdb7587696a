"""Send a request to a SageMaker endpoint and print the response.

  python scripts/invoke.py --endpoint sm-text-classifier --input doc.txt --content-type text/plain
  echo '{"instances": ["a text"]}' | python scripts/invoke.py --endpoint sm-text-classifier
  python scripts/invoke.py --endpoint sm-text-recommender --jsonl docs.jsonl

--input FILE (or - for stdin, the default) sends the whole content as one request. --jsonl FILE
sends each non-empty line as its own request (default content type application/json) and prints
one response line per input line. A ModelError (the container answered 4xx/5xx) prints the
container's own status and message and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from scripts.aws_cli import make_parser, run_main
from scripts.aws_common import Aws, ScriptError, error_code

MAX_BODY = 6 * 1024 * 1024  # SageMaker's real-time request limit


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ScriptError(f"cannot read {path}: {exc.strerror}", 2) from None


def model_error_message(exc: ClientError) -> str:
    """The container's own status and message from a ModelError, plus where its log is."""
    response: dict[str, Any] = exc.response
    status = response.get("OriginalStatusCode", "?")
    message = response.get("OriginalMessage") or response.get("Error", {}).get("Message", "")
    text = f"the model container answered {status}: {message}"
    if response.get("LogStreamArn"):
        text += f"\n  log stream: {response['LogStreamArn']}"
    return text


def invoke_once(aws: Aws, args: argparse.Namespace, body: bytes, content_type: str) -> bytes:
    if len(body) > MAX_BODY:
        raise ScriptError(f"request is {len(body)} bytes; SageMaker takes at most {MAX_BODY}", 2)
    params: dict[str, Any] = {
        "EndpointName": args.endpoint,
        "Body": body,
        "ContentType": content_type,
        "Accept": args.accept,
    }
    optional = {
        "CustomAttributes": args.custom_attributes,
        "TargetContainerHostname": args.target_container,
        "InferenceId": args.inference_id,
    }
    params.update({k: v for k, v in optional.items() if v})
    runtime = aws.client("sagemaker-runtime")
    try:
        response = runtime.invoke_endpoint(**params)
    except ClientError as exc:
        if error_code(exc) == "ModelError":
            raise ScriptError(model_error_message(exc)) from None
        raise
    if aws.dry_run:
        return b""
    return bytes(response["Body"].read())


def write(out: Any, data: bytes) -> None:
    out.write(data if data.endswith(b"\n") or not data else data + b"\n")
    out.flush()


def handler(args: argparse.Namespace) -> int:
    aws = Aws.from_args(args)
    with contextlib.ExitStack() as stack:
        to_stdout = args.output in (None, "-")
        out = sys.stdout.buffer if to_stdout else stack.enter_context(open(args.output, "wb"))
        content_type = args.content_type or "application/json"
        if not args.jsonl:
            write(out, invoke_once(aws, args, read_input(args.input), content_type))
            return 0
        lines = [line for line in read_input(args.jsonl).splitlines() if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                write(out, invoke_once(aws, args, line, content_type))
            except ScriptError as exc:
                raise ScriptError(f"line {number}: {exc}", exc.exit_code) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--endpoint", required=True, help="endpoint name")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default="-", help="request body file, - for stdin (default)")
    source.add_argument("--jsonl", help="JSON Lines file (- for stdin): one request per line")
    parser.add_argument("--content-type", help="request Content-Type (default application/json)")
    parser.add_argument("--accept", default="application/json", help="Accept (%(default)s)")
    parser.add_argument("--custom-attributes", help="X-Amzn-SageMaker-Custom-Attributes")
    parser.add_argument("--target-container", help="TargetContainerHostname (Direct mode)")
    parser.add_argument("--inference-id", help="InferenceId recorded with the request")
    parser.add_argument("--output", help="write responses here instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
