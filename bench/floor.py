"""The floor: a Flask hello world under gunicorn (sync workers), the least a Python model
server of this shape can cost. ``bench.run`` serves it beside ours and reports the ratios.

    gunicorn --workers 2 --bind 127.0.0.1:PORT bench.floor:app
"""

from __future__ import annotations

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
