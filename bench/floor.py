"""The floor: a Flask hello world under gunicorn (sync workers), the least a Python model
server of this shape can cost. ``bench.run`` serves it beside ours and reports the ratios.

    gunicorn --workers 2 --bind 127.0.0.1:PORT bench.floor:app   # gunicorn alone
    python -m bench.floor                                        # behind our front end

The second serves :func:`transport`, the same answers as plain WSGI (as ours are: see
``serving.hot_routes``), through ``serving.serve.run``: our nginx front end, gunicorn settings,
worker class and request hooks, with a hello world in place of the model (settings from the
environment, as ``serving.serve``). It is the floor of this architecture: the transport alone;
no answer of ours can be quicker.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

app = Flask("floor")
ANSWER = b'{"predictions":[{"label":"sci.space","probability":1.0}]}'


@app.get("/ping")
def ping() -> Response:
    return Response(b'{"status":"ok"}', content_type="application/json")


@app.post("/invocations")
def invocations() -> Response:
    request.get_data()  # read the body, as any server must
    return Response(ANSWER, content_type="application/json")


def transport(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Plain WSGI: ``/ping`` and ``/invocations`` (the body read, as any server must)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    body = ANSWER if environ.get("PATH_INFO") == "/invocations" else b'{"status":"ok"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def main() -> int:
    from serving.config import Settings
    from serving.serve import run

    return run(Settings.from_env(), lambda settings: transport, name="bench-floor[nginx]")


if __name__ == "__main__":
    sys.exit(main())
