"""A local SageMaker runtime (the data plane moto lacks) for the endpoints created in moto.

    python scripts/localsm/aws.py start --runtime     # moto + registry + this, all on 127.0.0.1
    eval "$(python scripts/localsm/aws.py env)"       # also sets AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME
    python scripts/localsm/aws.py stop                # stops it; it removes its containers

Answers sagemaker-runtime ``InvokeEndpoint`` (``POST /endpoints/<name>/invocations``, as boto3
sends it) for every endpoint moto knows: scripts/localsm/endpoints.py deploys each endpoint's
containers (scripts/localsm/deploy.py: images from the local registry, ECR URIs rewritten to it,
model data from moto's S3, ``docker run IMAGE serve``, ``/ping``), scripts/localsm/chain.py
chains a request through them as a Serial inference pipeline. An invocation that arrives while
its endpoint deploys waits for it (``--wait-seconds``).

Batch transform: scripts/localsm/transform_runner.py runs every transform job created in moto
(CreateTransformJob through the same boto3 calls as on AWS; moto_transform.py keeps it
``InProgress`` while this runtime is attached): containers, mini-batches, ``.out`` objects in
moto's S3, and the job's final status and ``FailureReason`` (scripts/localsm/transform.py).

Front-end checks: a body over 6291456 bytes gets HTTP 413 "HTTP content length exceeded
6291456 bytes." (the answer SageMaker's front end has been seen to give; botocore reports error
code "413"); an unknown endpoint a ``ValidationError`` (400).

Data capture: an endpoint whose config has a DataCaptureConfig gets its answered requests
recorded in moto's S3 in SageMaker's capture format (scripts/localsm/capture.py).

``GET /_local/health`` answers 200; ``GET /_local/endpoints`` lists the deployments (state,
containers, published ports, warnings such as a missing accept-bind-to-port label);
``GET /_local/transform-jobs`` the transform jobs it ran or runs. SIGTERM and
SIGINT remove every container it started; so does ``aws.py stop`` for any it left.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/

from scripts.aws_cli import make_parser
from scripts.localsm import capture, chain
from scripts.localsm.cleanup import runtime_id
from scripts.localsm.deploy import Deployer, say
from scripts.localsm.endpoints import ApiError, Endpoints
from scripts.localsm.procs import FAKE_KEY, REGION, moto_ecr_password
from scripts.localsm.transform_runner import TransformRunner

CLIENT_LIMIT = 6 * 1024 * 1024
PATH_RE = re.compile(r"^/endpoints/(?P<name>[^/?]+)/invocations/?(?:\?.*)?$")
JSON = {"Content-Type": "application/json"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    endpoints: Endpoints
    transforms: TransformRunner
    aws: Any  # moto clients by service name
    region = "us-east-1"

    def log_message(self, format: str, *args: Any) -> None:
        say(f"{self.address_string()} {format % args}")

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_doc(self, err: ApiError) -> None:
        if err.code is None:
            doc: dict[str, Any] = {"message": err.message}
            headers = dict(JSON)
        else:
            doc = {"__type": err.code, "Message": err.message}
            headers = {**JSON, "x-amzn-ErrorType": err.code}
        doc.update(err.fields)
        self.send(err.status, json.dumps(doc).encode(), headers)

    def do_GET(self) -> None:
        if self.path == "/_local/health":
            self.send(200, b'{"status":"ok"}', JSON)
        elif self.path == "/_local/endpoints":
            docs = [d.summary() for d in self.endpoints.all()]
            self.send(200, json.dumps(docs, indent=1).encode(), JSON)
        elif self.path == "/_local/transform-jobs":
            self.send(200, json.dumps(self.transforms.summary(), indent=1).encode(), JSON)
        else:
            self.send_error_doc(ApiError(404, "UnknownOperationException", "Unknown operation"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        match = PATH_RE.match(self.path)
        try:
            if not match or length > CLIENT_LIMIT:
                drain(self.rfile, length)  # so the client reads our answer, not a reset
                if not match:
                    raise ApiError(404, "UnknownOperationException", "Unknown operation")
                raise ApiError(413, None, f"HTTP content length exceeded {CLIENT_LIMIT} bytes.")
            body = self.rfile.read(length)
            dep = self.endpoints.serving(unquote(match.group("name")))
            out, headers = chain.invoke(dep, body, self.headers, self.region)
            self.send(200, out, headers)
            self.capture(dep, body, out, headers)
        except ApiError as err:
            self.send_error_doc(err)
        except Exception as exc:
            say(f"internal failure: {exc!r}")
            self.send_error_doc(ApiError(500, "InternalFailure", "An internal failure occurred."))


    def capture(self, dep: Any, body: bytes, out: bytes, reply: dict[str, str]) -> None:
        """Data capture of an answered request (localsm/capture.py); never fails the request."""
        if not dep.capture:
            return
        try:
            capture.write(self.aws("s3"), dep.capture, dep.endpoint, dep.variant,
                          (body, self.headers.get("Content-Type")),
                          (out, reply.get("Content-Type")), self.headers.get(chain.INFERENCE_ID))
        except Exception as exc:
            say(f"data capture of a request to {dep.endpoint} failed: {exc!r}")


def drain(stream: Any, length: int) -> None:
    while length > 0:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            return
        length -= len(chunk)


def serve(args: argparse.Namespace) -> int:
    import boto3

    moto_url = f"http://127.0.0.1:{args.moto_port}"
    session = boto3.Session(
        aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_KEY, region_name=REGION
    )
    clients: dict[str, Any] = {}
    clients_lock = threading.Lock()

    def aws(service: str) -> Any:
        with clients_lock:
            if service not in clients:
                clients[service] = session.client(service, endpoint_url=moto_url)
            return clients[service]

    work = args.work_dir.resolve()
    password = moto_ecr_password(args.moto_port)
    deployer = Deployer(work, runtime_id(work), args.registry_host, password, aws)
    endpoints = Endpoints(deployer, args.wait_seconds)
    transforms = TransformRunner(deployer, moto_url)
    transforms.attach()
    Handler.endpoints, Handler.transforms, Handler.region = endpoints, transforms, REGION
    Handler.aws = staticmethod(aws)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=endpoints.poll_forever, daemon=True).start()
    threading.Thread(target=transforms.poll_forever, daemon=True).start()
    say(f"runtime {deployer.runtime_id} on http://127.0.0.1:{args.port}, moto {moto_url}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        say("stopping: removing the containers this runtime started")
        transforms.shutdown()
        endpoints.shutdown()
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, with_common=False)
    parser.add_argument("command", choices=["serve"], help="run in the foreground")
    parser.add_argument("--work-dir", type=Path, required=True, help="aws.py's work dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--registry-host", required=True, help="127.0.0.1:PORT")
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=300.0,
        help="how long an invocation waits for its endpoint's deployment (%(default)s)",
    )
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
