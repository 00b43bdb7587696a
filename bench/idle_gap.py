"""What an idle moment before a request costs on this host: the same work, timed in CPU.

    python -m bench.idle_gap --model-dir DIR --data TGZ

One post through the server's WSGI path in-process (``serving.app.create_wsgi``: decoding, the
model, encoding and the request's log line, written to ``/dev/null``), over the 200-post mix,
back to back and after the thread slept 0.5 ms and 2 ms before each post; the same for a
``GET /ping``. Each figure is the CPU time of the request alone (``time.thread_time``), so the
sleep is not in it: what grows is the same instructions run with caches and branch predictors
that other work (another process, the hypervisor's other guests) emptied meanwhile.

At concurrency 1 every server process sleeps between requests, so this ratio multiplies the
CPU part of a request's latency. One JSON line on stdout.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.inprocess import mix
from serving.cli import Parser

GAPS_S = (0.0, 0.0005, 0.002)
PASSES = 3  # over the mix, per gap


def _environ(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {"PATH_INFO": "/ping", "REQUEST_METHOD": "GET"}
    return {"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/plain",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "HTTP_ACCEPT": "application/json"}


def cpu_us(app: Any, bodies: list[bytes | None], gap: float) -> list[float]:
    """CPU microseconds of each request (``time.thread_time``), ``gap`` seconds of sleep before
    each."""
    def start_response(_status: str, _headers: list) -> None:
        return None

    samples = []
    for _ in range(PASSES):
        for body in bodies:
            environ = _environ(body)
            if gap:
                time.sleep(gap)
            started = time.thread_time()
            for _chunk in app(environ, start_response):
                pass
            samples.append((time.thread_time() - started) * 1e6)
    return samples


def measure(model_dir: Path, data: str) -> dict[str, Any]:
    from serving import app as server_app
    from serving import logs
    from serving.config import Settings
    from serving.data import load_splits

    logs.configure("INFO")  # the server's JSON log line, written where it costs no disk
    handler = logging.getLogger().handlers[0]
    with open(os.devnull, "w") as devnull:
        stderr = handler.setStream(devnull)
        wsgi = server_app.create_wsgi(server_app.load_server(
            Settings.from_env({**os.environ, "SM_MODEL_DIR": str(model_dir)})))
        posts: list[bytes | None] = [t.encode() for t in mix(load_splits(data).test.texts)]
        pings: list[bytes | None] = [None] * len(posts)
        cpu_us(wsgi, posts, 0.0)  # warm-up pass
        out: dict[str, Any] = {}
        for name, bodies in (("post", posts), ("ping", pings)):
            p50 = {gap: round(statistics.median(cpu_us(wsgi, bodies, gap)), 1) for gap in GAPS_S}
            for gap, value in p50.items():
                out[f"{name}_cpu_us_p50_after_{gap * 1e3:g}ms_idle"] = value
            out[f"{name}_after_2ms_over_back_to_back"] = round(p50[0.002] / max(p50[0.0], 0.1), 2)
        handler.setStream(stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.idle_gap", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.model_dir, args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
