"""One InvokeEndpoint through a deployment's containers, chained as SageMaker does (§2).

Serial: the first container gets the client's Content-Type, each next one the previous response
body and its Content-Type; only the last gets the client's Accept, the others ``*/*``.
``CustomAttributes`` and ``InferenceId`` reach every container (propagation through a pipeline
is UNCONFIRMED; this is our choice); the client gets the last container's custom attributes
when it sets them. ``TargetContainerHostname`` calls that one container alone (Direct mode).

Errors, shaped for botocore's sagemaker-runtime model (``x-amzn-ErrorType`` + JSON members):
a container's non-2xx -> ``ModelError`` (424) with ``OriginalStatusCode``, ``OriginalMessage``
(its body) and ``LogStreamArn``; a body over 5 MB between two containers, a timeout (60 s) or a
refused connection -> ``ModelError`` too (OriginalStatusCode 413 / 0 / 0: our choice, SageMaker's
values for these cases are UNCONFIRMED).
"""

from __future__ import annotations

import http.client
import re
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/

from scripts.localsm.deploy import Box, Deployment, say
from scripts.localsm.endpoints import ACCOUNT, ApiError, validation

PIPE_LIMIT = 5 * 1024 * 1024
CONTAINER_TIMEOUT = 60.0
ATTRS = "X-Amzn-SageMaker-Custom-Attributes"
TARGET = "X-Amzn-SageMaker-Target-Container-Hostname"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"


def invoke(dep: Deployment, body: bytes, headers: Any, region: str) -> tuple[bytes, dict[str, str]]:
    """Run the chain; returns the last body and the headers for the client, or raises ApiError."""
    attrs = headers.get(ATTRS)
    if attrs is not None and (len(attrs) > 1024 or not re.fullmatch(r"[\x20-\x7e]*", attrs)):
        raise validation("CustomAttributes must be at most 1024 visible US-ASCII characters.")
    boxes = dep.boxes
    target = headers.get(TARGET)
    if target:
        boxes = [b for b in dep.boxes if b.hostname == target]
        if not boxes:
            names = ", ".join(b.hostname for b in dep.boxes)
            raise validation(f"TargetContainerHostname {target} is not one of: {names}.")
    content_type = headers.get("Content-Type")
    extra = {ATTRS: attrs, INFERENCE_ID: headers.get(INFERENCE_ID)}
    answer: dict[str, str] = {}
    trace: list[dict[str, Any]] = []
    dep.last_chain = trace  # what each container got and answered (GET /_local/endpoints)
    for i, box in enumerate(boxes):
        last = i == len(boxes) - 1
        sent = {"Content-Type": content_type, "Accept": headers.get("Accept") if last else "*/*"}
        sent.update(extra)
        hop: dict[str, Any] = {"hostname": box.hostname, "content_type": content_type}
        hop.update(accept=sent["Accept"], bytes_in=len(body))
        trace.append(hop)
        status, body, answer = call(dep, box, body, {k: v for k, v in sent.items() if v}, region)
        hop.update(status=status, answer_type=answer.get("content-type"), bytes_out=len(body))
        if not 200 <= status < 300:
            kind = "client" if status < 500 else "server"
            text = body.decode("utf-8", "replace")[:2000]
            message = f'Received {kind} error ({status}) from {box.hostname} with message "{text}".'
            raise model_error(dep, box, message, status, text, region)
        content_type = answer.get("content-type")
        if not last and len(body) > PIPE_LIMIT:
            nxt = boxes[i + 1].hostname
            message = (
                f"Received response from {box.hostname} with status code {status}. However, the "
                f"request payload from {box.hostname} to {nxt} is {len(body)} bytes, which has "
                "exceeded the maximum limit of 5 MB."
            )
            raise model_error(dep, box, message, 413, message, region)
    reply = {
        "Content-Type": content_type or "application/octet-stream",
        "x-Amzn-Invoked-Production-Variant": dep.variant,
    }
    if answer.get(ATTRS.lower()):
        reply[ATTRS] = answer[ATTRS.lower()]
    return body, reply


def call(
    dep: Deployment, box: Box, body: bytes, headers: dict[str, str], region: str
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", box.host_port, timeout=CONTAINER_TIMEOUT)
    try:
        conn.request("POST", "/invocations", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    except TimeoutError:
        message = (
            f"Your invocation timed out while waiting for a response from container "
            f"{box.hostname}. Review the latency metrics for each container in Amazon CloudWatch, "
            "resolve the issue, and try again."
        )
        raise model_error(dep, box, message, 0, message, region) from None
    except (OSError, http.client.HTTPException) as exc:
        message = f"Container {box.hostname} did not answer: {exc!r}"
        raise model_error(dep, box, message, 0, message, region) from None
    finally:
        conn.close()


def model_error(
    dep: Deployment, box: Box, message: str, status: int, original: str, region: str
) -> ApiError:
    group = f"/aws/sagemaker/Endpoints/{dep.endpoint}"
    see = (
        f" See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group} in account {ACCOUNT} for more information."
    )
    stream = f"{dep.variant}/i-local/{box.hostname}"
    say(f"{dep.endpoint}: ModelError from {box.hostname}: {message[:300]} (docker logs {box.name})")
    return ApiError(
        424,
        "ModelError",
        message + see,
        OriginalStatusCode=status,
        OriginalMessage=original,
        LogStreamArn=f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}:log-stream:{stream}",
        ErrorCode="CLIENT_ERROR_FROM_MODEL" if 400 <= status < 500 else "SERVER_ERROR_FROM_MODEL",
    )
