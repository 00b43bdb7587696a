"""Waiting for SageMaker resources with progress: a terminal status (`wait_for`) or deletion
(`wait_gone`). Both print each change and a heartbeat to stderr, and make no call in a dry run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from scripts.aws_common import Aws, ScriptError, is_not_found, log


def wait_for(
    aws: Aws,
    what: str,
    describe: Callable[[], dict[str, Any]],
    *,
    status_key: str,
    done: Sequence[str],
    failed: Sequence[str],
    timeout: float = 3 * 3600,
    poll: float = 30.0,
    heartbeat: float = 60.0,
) -> dict[str, Any]:
    """Poll until a terminal status, printing each change and a heartbeat; fail with the reason."""
    if aws.dry_run:
        log(f"[dry-run] would wait for {what} to reach {'/'.join(done)}")
        return {}
    start = time.monotonic()
    last_label, last_print = "", 0.0
    while True:
        desc = describe()
        status = str(desc.get(status_key, "?"))
        secondary = desc.get("SecondaryStatus")
        label = f"{status} / {secondary}" if secondary and secondary != status else status
        elapsed = time.monotonic() - start
        if label != last_label or elapsed - last_print >= heartbeat:
            log(f"{what}: {label} ({elapsed:.0f} s)")
            last_label, last_print = label, elapsed
        if status in done:
            return desc
        if status in failed:
            reason = desc.get("FailureReason") or "no FailureReason given"
            raise ScriptError(f"{what} ended {status}: {reason}")
        if elapsed > timeout:
            raise ScriptError(f"gave up waiting for {what} after {elapsed:.0f} s (last: {label})")
        time.sleep(poll)


def wait_gone(
    aws: Aws, what: str, describe: Callable[[], Any], timeout: float = 1800, poll: float = 15.0
) -> None:
    """Poll a describe call until it answers "not found"."""
    if aws.dry_run:
        log(f"[dry-run] would wait for {what} to be deleted")
        return
    start = time.monotonic()
    while True:
        try:
            desc = describe()
        except ClientError as exc:
            if is_not_found(exc):
                log(f"{what}: deleted ({time.monotonic() - start:.0f} s)")
                return
            raise
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise ScriptError(f"gave up waiting for {what} to be deleted after {elapsed:.0f} s")
        status = desc.get("EndpointStatus", "?") if isinstance(desc, dict) else "?"
        log(f"{what}: {status}, waiting for deletion ({elapsed:.0f} s)")
        time.sleep(poll)
