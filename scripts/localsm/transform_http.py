"""HTTP between a local transform job and its containers (for scripts/localsm/transform.py).

``chain``: one mini-batch as ``POST /invocations`` through the model's containers in order, as
SageMaker chains a pipeline model: the job's ContentType to the first, each response and its
Content-Type to the next, the job's Accept to the last (``*/*`` to the others); a body sent
chunked when MaxPayloadInMB is 0 ("For cases where the payload might be arbitrarily large and is
transmitted using HTTP chunked encoding, set the value to 0"). ``execution_parameters``: what
``GET /execution-parameters`` answers, checked (DG your-algorithms-batch-code).
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from scripts.localsm.deploy import Box

STRATEGY_API = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}


class CallFailed(Exception):
    """A request that got no 2xx: the status (0: no answer), the message, which container."""

    def __init__(self, status: int, message: str, hostname: str) -> None:
        super().__init__(message)
        self.status, self.message, self.hostname = status, message, hostname


def chain(
    boxes: list[Box],
    body: bytes,
    content_type: str | None,
    accept: str | None,
    timeout: float,
    chunked: bool = False,
) -> bytes:
    """POST /invocations through the containers in order; the last body, or CallFailed."""
    for i, box in enumerate(boxes):
        last = i == len(boxes) - 1
        headers = {"Content-Type": content_type} if content_type else {}
        if last and accept:
            headers["Accept"] = accept
        elif not last:
            headers["Accept"] = "*/*"
        conn = http.client.HTTPConnection("127.0.0.1", box.host_port, timeout=timeout)
        try:
            if chunked:
                conn.request("POST", "/invocations", iter([body]), headers, encode_chunked=True)
            else:
                conn.request("POST", "/invocations", body, headers)
            resp = conn.getresponse()
            answer = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CallFailed(0, f"{type(exc).__name__}: {exc}", box.hostname) from None
        finally:
            conn.close()
        if not 200 <= resp.status < 300:
            raise CallFailed(resp.status, answer.decode("utf-8", "replace")[:600], box.hostname)
        body, content_type = answer, resp.getheader("Content-Type")
    return body


def execution_parameters(box: Box) -> dict[str, Any]:
    """What the container answers at GET /execution-parameters, checked; {} when nothing."""
    conn = http.client.HTTPConnection("127.0.0.1", box.host_port, timeout=5)
    try:
        conn.request("GET", "/execution-parameters")
        resp = conn.getresponse()
        doc = json.loads(resp.read()) if resp.status == 200 else {}
    except (OSError, http.client.HTTPException, ValueError):
        return {}
    finally:
        conn.close()
    found: dict[str, Any] = {}
    if isinstance(doc.get("MaxConcurrentTransforms"), int) and doc["MaxConcurrentTransforms"] > 0:
        found["MaxConcurrentTransforms"] = doc["MaxConcurrentTransforms"]
    if isinstance(doc.get("MaxPayloadInMB"), int) and doc["MaxPayloadInMB"] >= 0:
        found["MaxPayloadInMB"] = doc["MaxPayloadInMB"]
    if doc.get("BatchStrategy") in STRATEGY_API:
        found["BatchStrategy"] = STRATEGY_API[doc["BatchStrategy"]]
    return found
