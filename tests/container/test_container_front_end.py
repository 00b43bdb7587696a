"""The image's nginx front end: slow clients, truncated and malformed requests, errors as JSON
with a request id, as root and as an unprivileged user (ports published on 127.0.0.1 only)."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.test_front_end import assert_json_error, exchange, parse, post_head

pytestmark = pytest.mark.docker
DOC = b"Subject: shuttle launch orbit\n\nThe nasa shuttle launch put the satellite in orbit."


@pytest.mark.parametrize("user", ["", "4242:4242"])
def test_front_end_in_the_image(serve: Callable[..., Any], user: str) -> None:
    served = serve(env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}, user=user)
    # Idle and slow clients: more than the workers, yet a normal request is answered at once.
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(16)]
    for sock in idle[::2]:
        sock.sendall(post_head(length=1000) + b'"NASA')
    time.sleep(0.5)
    samples = []
    for _ in range(10):
        started = time.perf_counter()
        assert served.post(DOC, "text/plain").status_code == 200
        samples.append(time.perf_counter() - started)
    for sock in idle:
        sock.close()
    print(f"with 16 slow/idle clients: p50 {statistics.median(samples) * 1e3:.1f} ms")
    assert statistics.median(samples) < 0.5
    # Truncated body: never scored.
    records = b"".join(orjson.dumps(f"nasa orbit {i}") + b"\n" for i in range(100))
    response = exchange(served.port, post_head(length=len(records)) + records[:300])
    assert b"predictions" not in response
    # nginx's own errors are the app's JSON error body with a request id.
    assert_json_error(exchange(served.port, post_head(chunked=True) + b"zz\r\nab\r\n0\r\n\r\n"),
                      400)
    assert_json_error(exchange(served.port, post_head(length=7 * 1024 * 1024)), 413)
    assert_json_error(exchange(served.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"), 414)
    head = post_head(length=10**9, extra=b"X-Amzn-SageMaker-Inference-Id: abc-1\r\n")
    assert_json_error(exchange(served.port, head), 413, request_id="abc-1")
    ok = exchange(served.port, post_head(chunked=True) + b"6\r\n\"NASA\"\r\n0\r\n\r\n")
    assert parse(ok)[0] == 200
    logs = served.container.logs().decode(errors="replace").splitlines()
    assert logs and all(line.startswith("{") for line in logs), [
        line for line in logs if not line.startswith("{")][:5]
    assert not any('"level":"ERROR"' in line or "Traceback" in line for line in logs)
