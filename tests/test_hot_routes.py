"""serving/hot_routes.py (``HotRoutes``: ``POST /invocations`` and ``GET /ping`` before
Flask): the same answers as through Flask's views, exact header lists, the body read by
Content-Length or as a terminated stream, and Flask still answering everything else."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from serving import logs
from serving.app import Server, create_app
from serving.artifact import Model
from serving.config import Settings
from serving.hot_routes import HotRoutes

POST = b"NASA will launch the shuttle into orbit; the moon mission is ready"


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path) -> Any:
    server = Server(Model.load(tiny_model_dir),
                    Settings(model_dir=str(tiny_model_dir), workers=2))
    server.warm_up()
    return create_app(server)


def call(wsgi: Any, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None, **environ: Any) -> tuple[str, list, bytes]:
    env = EnvironBuilder(method=method, path=path, data=body, headers=headers).get_environ()
    env.update(environ)
    out, status, response_headers = run_wsgi_app(wsgi, env, buffered=True)
    return status, list(response_headers.items()), b"".join(out)


CASES = [
    ("POST", "/invocations", POST, {"Content-Type": "text/plain"}),
    ("POST", "/invocations", POST, {"Content-Type": "text/plain", "Accept": "text/csv"}),
    ("POST", "/invocations", POST, {"Content-Type": "text/plain",
                                    "X-Amzn-SageMaker-Custom-Attributes": "explain=2"}),
    ("POST", "/invocations", POST, {"Content-Type": "text/plain",
                                    "X-Amzn-SageMaker-Custom-Attributes": "top_k=0"}),
    ("POST", "/invocations", b"", {"Content-Type": "text/plain"}),
    ("POST", "/invocations", b"\xff", {"Content-Type": "text/plain"}),
    ("POST", "/invocations", POST, {"Content-Type": "image/png"}),
    ("POST", "/invocations", POST, {"Content-Type": "text/plain", "Accept": "image/png"}),
    ("GET", "/ping", b"", {}),
    ("GET", "/execution-parameters", b"", {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), CASES)
def test_hot_routes_answer_as_the_flask_views(app: Any, method: str, path: str, body: bytes,
                                              headers: dict[str, str]) -> None:
    headers = {**headers, "X-Amzn-SageMaker-Inference-Id": "id-1"}
    hot = app.wsgi_app
    assert isinstance(hot, HotRoutes)
    fast = call(hot, method, path, body, headers)
    through_flask = call(hot.flask_app, method, path, body, headers)  # routing → the views
    assert fast == through_flask
    status, header_list, _ = fast
    names = [name for name, _ in header_list]
    if path != "/invocations":
        assert status == "200 OK" and names == ["Content-Type", "Content-Length"]
    else:
        assert names == ["Content-Type", "Content-Length", "X-Request-Id"]
        assert dict(header_list)["X-Request-Id"] == "id-1"


def test_flask_answers_everything_else(app: Any) -> None:
    status, headers, body = call(app.wsgi_app, "GET", "/invocations")
    assert status == "405 METHOD NOT ALLOWED" and "POST" in dict(headers)["Allow"]
    assert orjson.loads(body)["error"] == "method_not_allowed"
    status, headers, body = call(app.wsgi_app, "HEAD", "/ping")
    assert status == "200 OK" and body == b""
    assert call(app.wsgi_app, "GET", "/ping/")[0] == "404 NOT FOUND"
    assert call(app.wsgi_app, "GET", "/execution-parameters")[0] == "200 OK"


def test_body_by_content_length_and_by_a_terminated_stream(app: Any) -> None:
    headers = {"Content-Type": "text/plain"}
    # fewer bytes than the Content-Length announced (a client that left): a 400, nothing scored
    status, _, body = call(app.wsgi_app, "POST", "/invocations", POST, headers,
                           CONTENT_LENGTH=str(len(POST) + 10))
    assert status == "400 BAD REQUEST"
    assert f"{len(POST)} of the {len(POST) + 10} bytes" in orjson.loads(body)["message"]
    # chunked (no Content-Length): the server's terminated stream is read to its end
    status, _, body = call(app.wsgi_app, "POST", "/invocations", b"", headers,
                           CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                           **{"wsgi.input": io.BytesIO(POST), "wsgi.input_terminated": True})
    assert status == "200 OK", body
    assert orjson.loads(body)["predictions"][0]["label"] == "sci.space"


def test_one_log_line_per_invocation(app: Any) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("INFO")
    root.handlers[0].stream = stream  # type: ignore[attr-defined]
    try:
        call(app.wsgi_app, "POST", "/invocations", POST,
             {"Content-Type": "text/plain", "X-Amzn-SageMaker-Inference-Id": "id-2"})
        call(app.wsgi_app, "GET", "/ping")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["id-2"]
    line = lines[0]
    assert line["status"] == 200 and line["bytes_in"] == len(POST) and line["records"] == 1
    assert {"decode_ms", "model_ms", "encode_ms", "total_ms", "bytes_out"} <= set(line)
    assert "NASA" not in stream.getvalue()


LAZY_FLASK = """
import sys
from pathlib import Path
from werkzeug.test import EnvironBuilder, run_wsgi_app
from serving.app import Server, create_wsgi
from serving.artifact import Model
from serving.config import Settings

def call(wsgi, method, path, body=b"", headers=None):
    env = EnvironBuilder(method=method, path=path, data=body, headers=headers).get_environ()
    out, status, _ = run_wsgi_app(wsgi, env, buffered=True)
    return status, b"".join(out)

server = Server(Model.load(Path(sys.argv[1])), Settings(model_dir=sys.argv[1], workers=2))
server.warm_up()
hot = create_wsgi(server)
assert call(hot, "GET", "/ping")[0] == "200 OK"
assert call(hot, "GET", "/execution-parameters")[0] == "200 OK"
assert call(hot, "POST", "/invocations", b"orbit", {"Content-Type": "text/plain"})[0] == "200 OK"
print("flask" in sys.modules, hot.flask_app is None)
print(call(hot, "GET", "/nope")[0], call(hot, "HEAD", "/ping")[0],
      call(hot, "DELETE", "/invocations")[0])
print("flask" in sys.modules, hot.flask_app is not None)
"""


def test_a_server_imports_flask_only_for_a_request_the_hot_routes_do_not_answer(
        tiny_model_dir: Path) -> None:
    # serving.serve serves create_wsgi: /ping, /invocations and /execution-parameters without
    # Flask (~65 ms less start-up); the first other request makes the Flask app, which answers
    # it as create_app's does.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LAZY_FLASK, str(tiny_model_dir)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "False True", "404 NOT FOUND 200 OK 405 METHOD NOT ALLOWED", "True True"]


def test_status_lines_and_content_length_as_werkzeug_gives_them() -> None:
    # hot_routes does without werkzeug (~45 ms of start-up); its two helpers answer as it does.
    from werkzeug.http import HTTP_STATUS_CODES
    from werkzeug.wsgi import get_content_length

    from serving import errors
    from serving.hot_routes import content_length, status_line

    statuses = {cls.status for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.ServingError)}
    assert {400, 406, 413, 415, 422} <= statuses
    for status in statuses | {200, 404, 405, 500, 503}:
        assert status_line(status) == f"{status} {HTTP_STATUS_CODES[status].upper()}"
    assert status_line(599) == "599 UNKNOWN"
    for length in (None, "", "12", " 12 ", "0", "-3", "+3", "1_0", "\u0663", "abc", "1.5",
                   "9" * 5000):
        for encoding in (None, "chunked", "gzip, Chunked", "identity", ""):
            environ = {k: v for k, v in (("CONTENT_LENGTH", length),
                                         ("HTTP_TRANSFER_ENCODING", encoding)) if v is not None}
            assert content_length(environ) == get_content_length(environ), environ


@pytest.mark.parametrize(("path", "allow"), [("/invocations", "OPTIONS, POST"),
                                             ("/ping", "GET, HEAD, OPTIONS")])
def test_options_is_204_with_allow_and_request_id(app: Any, path: str, allow: str) -> None:
    status, headers, body = call(app, "OPTIONS", path,
                                 headers={"X-Amzn-SageMaker-Inference-Id": "opt-1"})
    got = dict(headers)
    assert (status, body) == ("204 NO CONTENT", b"")
    assert got["Allow"] == allow and got["X-Request-Id"] == "opt-1"
    assert "Content-Type" not in got


@pytest.mark.parametrize("given", ['a"b', "a\\b", "tab\there", "x" * 257, "caf\u00e9", "",
                                   "line\n"])
def test_an_inference_id_that_is_not_printable_ascii_is_replaced(app: Any, given: str) -> None:
    """nginx replaces such ids; without it (SERVING_FRONT_END=none) the app does."""
    status, headers, _body = call(app, "POST", "/invocations", POST,
                                 headers={"Content-Type": "text/plain"},
                                 HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID=given)
    rid = dict(headers)["X-Request-Id"]
    assert status == "200 OK" and rid != given and re.fullmatch(r"[0-9a-f]{32}", rid)
    ok = call(app, "POST", "/invocations", POST, headers={"Content-Type": "text/plain"},
              HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID="my id-1 (ok)")
    assert dict(ok[1])["X-Request-Id"] == "my id-1 (ok)"
