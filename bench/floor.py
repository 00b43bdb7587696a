"""The floor: a Flask hello world under gunicorn (sync workers), the least a Python model
server of this shape can cost. ``bench.run`` serves it beside ours and reports the ratios.

    gunicorn --workers 2 --bind 127.0.0.1:PORT bench.floor:app   # gunicorn alone
    python -m bench.floor                                        # behind our front end

The second serves the same app through ``serving.serve.run``: our nginx front end, gunicorn
settings, worker class and request hooks, with the hello world in place of the model (settings
from the environment, as ``serving.serve``). It is the floor of this architecture: no answer
of ours can be quicker than its.
"""

from __future__ import annotations

import sys

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


def main() -> int:
    from serving.config import Settings
    from serving.serve import run

    return run(Settings.from_env(), lambda settings: app, name="bench-floor[nginx]")


if __name__ == "__main__":
    sys.exit(main())
