"""The two routes every request takes, ``POST /invocations`` and ``GET /ping``, as plain WSGI
in front of the Flask app (serving/app.py), which answers every other path and method.

Same answers, headers and log lines as through Flask, without its per-request request context,
URL matching, hooks and Response objects (~300 Python calls a request: a ``/ping`` costs ~10 µs
in-process instead of ~240 µs on the 2-core test machine). ``tests/test_hot_routes.py`` checks
the answers equal the Flask views'.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Protocol

import orjson

from serving import logs
from serving.config import Settings
from serving.errors import BadRequest, PayloadTooLarge, ServingError

access_log = logging.getLogger(logs.ACCESS)
log = logging.getLogger("serving.app")
JSON_TYPE = "application/json"
# WSGI environ keys of the request headers read on every request (PEP 3333: HTTP_ + the name
# upper-cased, "-" as "_"; Content-Type is CONTENT_TYPE), what werkzeug's request.headers reads.
INFERENCE_ID = "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"
# A client's request id is used as given when it is 1-256 printable ASCII characters without
# '"' or '\\' (so it goes into JSON and log lines verbatim); else a fresh one replaces it. nginx's
# map (serving/nginx_conf.py), the workers' own answers (serving/workers.py) and the app use it.
REQUEST_ID_PATTERN = r"^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$"
VALID_ID = re.compile(REQUEST_ID_PATTERN)
CUSTOM_ATTRIBUTES = "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"
# CreateTransformJob: MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 (API reference,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html).
TRANSFORM_BUDGET_MB = 100
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class StageName(Protocol):
    name: str
    info: dict[str, Any]


class Invoker(Protocol):
    """What the routes need of serving.app.Server."""

    settings: Settings
    ready: bool

    @property
    def stage(self) -> StageName: ...

    def invoke(self, body: bytes, content_type: str | None, accept: str | None,
               attributes: str | None, timings: dict[str, float] | None = None,
               ) -> tuple[bytes, str, int]: ...


def request_id_of(environ: dict[str, Any]) -> str:
    """SageMaker's inference id when the client sent a valid one, else a fresh id. (Behind
    nginx the id is already checked; without it, SERVING_FRONT_END=none, only here.)"""
    given = environ.get(INFERENCE_ID)
    return given if given and VALID_ID.fullmatch(given) else uuid.uuid4().hex


def execution_parameters(settings: Settings) -> dict[str, object]:
    """What ``GET /execution-parameters`` advertises: one transform per worker, capped so that
    ``MaxConcurrentTransforms * MaxPayloadInMB <= 100`` (a job request copying it is valid)."""
    payload = settings.max_payload_mb
    concurrent = max(1, min(settings.workers, TRANSFORM_BUDGET_MB // payload))
    return {"MaxConcurrentTransforms": concurrent, "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": payload}


def status_line(status: int) -> str:
    """The status line werkzeug's Response writes (``413 REQUEST ENTITY TOO LARGE``), from the
    standard library's names: werkzeug costs ~45 ms of a server's start-up to import, and a
    server imports it only with Flask (tests/test_hot_routes.py compares the two for every
    status serving answers)."""
    try:
        return f"{status} {HTTPStatus(status).phrase.upper()}"
    except ValueError:
        return f"{status} UNKNOWN"


_PLAIN_INT = re.compile(r"-?[0-9]+")


def content_length(environ: dict[str, Any]) -> int | None:
    """werkzeug.wsgi.get_content_length: None without a Content-Length or with a Transfer-Encoding
    (whose chunked test werkzeug makes: the rare case imports it), a value of ASCII digits
    otherwise (0 when it is not one, or negative)."""
    if environ.get("HTTP_TRANSFER_ENCODING") is not None:
        from werkzeug.wsgi import get_content_length

        return get_content_length(environ)
    raw = environ.get("CONTENT_LENGTH")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0, int(raw)) if _PLAIN_INT.fullmatch(raw) else 0
    except ValueError:  # over int()'s digit limit (sys.get_int_max_str_digits)
        return 0


def error_body(code: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"error": code, "message": message, "request_id": request_id})


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, refusing anything over ``limit`` bytes before reading it all, and a
    body cut short (fewer bytes than its Content-Length, a broken chunked encoding): nginx
    refuses both before the app sees them; without it (SERVING_FRONT_END=none) this does.

    With a Content-Length (nginx always sends one) exactly that many bytes are read from the
    server's input stream, which ends at the body's end (PEP 3333); werkzeug's ``request.stream``
    would allocate ``limit + 1`` bytes (6 MB) per read. Without one (chunked), werkzeug's
    stream as before: the server's terminated stream, or an empty one."""
    length = content_length(environ)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is {limit}")
    try:
        if length is not None:
            body = environ["wsgi.input"].read(length) if length else b""
        else:
            from werkzeug.wsgi import get_input_stream

            body = get_input_stream(environ, safe_fallback=True).read(limit + 1)
    except Exception as exc:  # gunicorn's chunk errors, a reset connection: the client's fault
        raise BadRequest(f"the body could not be read ({type(exc).__name__}): a malformed "
                         "chunked encoding, or the client left") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    if length is not None and len(body) < length:
        raise BadRequest(f"the body ended after {len(body)} of the {length} bytes its "
                         "Content-Length announced (client abort); nothing was scored")
    return body


class HotRoutes:
    """WSGI in front of Flask for ``POST /invocations``, ``GET /ping`` and ``GET
    /execution-parameters`` (see the module docstring). Every other method and path (404, 405
    with ``Allow``, HEAD, OPTIONS) goes to the Flask app behind it (serving/flask_app.py), made
    by the first such request when none was given: a server starts without importing Flask."""

    def __init__(self, flask_app: WsgiApp | None, server: Invoker,
                 make_flask_app: Callable[[HotRoutes], object] | None = None) -> None:
        """``make_flask_app(self)`` sets ``self.flask_app`` when the first request needs it."""
        self.flask_app = flask_app
        self.make_flask_app = make_flask_app
        self.server = server
        self.stage_name = server.stage.name
        self.max_request_bytes = server.settings.max_request_bytes
        self.ping_ok = orjson.dumps({"status": "ok", **server.stage.info})
        self.execution_parameters = orjson.dumps(execution_parameters(server.settings))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse,
                 ) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == "/invocations" and method == "POST":
            status, headers, body = self.invocation(environ)
        elif path == "/ping" and method == "GET":
            status, headers, body = self.ping()
        elif path == "/execution-parameters" and method == "GET":
            status, body = "200 OK", self.execution_parameters
            headers = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))]
        else:
            if self.flask_app is None and self.make_flask_app is not None:
                self.make_flask_app(self)
            assert self.flask_app is not None, "HotRoutes without a Flask app behind it"
            return self.flask_app(environ, start_response)
        start_response(status, headers)
        return [body]

    def ping(self) -> tuple[str, list[tuple[str, str]], bytes]:
        body, status = (self.ping_ok, "200 OK") if self.server.ready else (
            b'{"status":"loading"}', "503 SERVICE UNAVAILABLE")
        return status, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))], body

    def invocation(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status line, headers and body of one ``POST /invocations``; logs its line."""
        started = time.perf_counter()
        request_id = request_id_of(environ)
        timings: dict[str, float] = {}
        fields: dict[str, object] = {"request_id": request_id, "stage": self.stage_name}
        records, status = 0, 200
        try:
            body = read_body(environ, self.max_request_bytes)
            fields["bytes_in"] = len(body)
            out, content_type, records = self.server.invoke(
                body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"),
                environ.get(CUSTOM_ATTRIBUTES), timings)
        except ServingError as exc:
            fields["error"] = exc.code
            status, content_type = exc.status, JSON_TYPE
            out = error_body(exc.code, exc.message, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            fields["error"] = "internal_error"
            status, content_type = 500, JSON_TYPE
            out = error_body("internal_error",
                              f"internal error; quote request id {request_id}", request_id)
        fields.update(status=status, records=records, bytes_out=len(out), **timings,
                      total_ms=round((time.perf_counter() - started) * 1e3, 3))
        logs.log_request(access_log, fields)
        return ("200 OK" if status == 200 else status_line(status),
                [("Content-Type", content_type), ("Content-Length", str(len(out))),
                 ("X-Request-Id", request_id)], out)
