"""Where a container's start-up goes: ``docker run IMAGE serve`` → first ``/ping`` 200, split
by the server's own log lines, for one or more images in interleaved rounds.

    python -m bench.startup --model-dir DIR [--runs 5] IMAGE [IMAGE ...]

Each round starts every image once (the order alternating from round to round, so drift in the
machine's load affects them alike) as ``bench.run`` does (host networking, the model mounted,
2 workers, polled every 5 ms) and splits the time from the ``docker run`` call by what the
container reports: Docker's ``State.StartedAt``, then the server's JSON log lines ("model
loaded ... in X s", gunicorn's "Listening at", "nginx listening", "Booting worker"). Printed as
JSON: per image the median of each phase, the container's CPU until the first ``/ping`` 200 and
every run's total. Timestamps are the log's (milliseconds); on a shared machine compare images
measured in the same run only.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.cold_start import container_cpu_s, start_container
from serving.cli import Parser

_LOADED = re.compile(r"^model loaded .* in ([0-9.]+) s(?: \(.*\))?$")


def epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (Docker's nanoseconds or the log's
    milliseconds)."""
    stamp = stamp.strip().removesuffix("Z")
    base, _, fraction = stamp.partition(".")
    seconds = datetime.fromisoformat(base + "+00:00").timestamp()
    return seconds + (float("0." + fraction) if fraction else 0.0)


def log_lines(text: str) -> list[tuple[float, str]]:
    """(time, message) of the server's JSON log lines in ``text``; other lines are skipped."""
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
            lines.append((epoch(record["time"]), str(record["message"])))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(lines)


def phases(called: float, started: float, lines: list[tuple[float, str]],
           first_ping_s: float) -> dict[str, float]:
    """Seconds of each phase of one start, from the ``docker run`` call at ``called`` (epoch),
    the container's start ``started`` (epoch) and its log ``lines``."""
    def first(prefix: str) -> tuple[float, str]:
        return next((t, m) for t, m in lines if m.startswith(prefix))

    loaded_at, message = first("model loaded ")
    match = _LOADED.match(message)
    if match is None:
        raise ValueError(f"unexpected log line: {message!r}")
    load_s = float(match.group(1))
    nginx_at = next((t for t, m in lines if m.startswith("nginx listening")), None)
    listening_at = nginx_at if nginx_at is not None else first("Listening at")[0]
    worker_at = first("Booting worker")[0]
    return {
        "docker_until_started_s": started - called,
        "python_and_imports_s": loaded_at - load_s - started,
        "model_load_and_warm_up_s": load_s,
        "socket_and_front_end_s": listening_at - loaded_at,
        "first_worker_booted_s": worker_at - listening_at,
        "until_first_ping_s": called + first_ping_s - worker_at,
        "total_s": first_ping_s,
    }


def measure(image: str, model_dir: Path) -> dict[str, Any]:
    """One cold start of ``image`` (the container is removed afterwards)."""
    called = time.time()
    cid, _port, seconds = start_container(image, model_dir)
    try:
        cpu = container_cpu_s(cid)
        inspected = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", cid],
                                   check=True, capture_output=True, text=True).stdout
        logs = subprocess.run(["docker", "logs", cid], check=True, capture_output=True,
                              text=True)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    out: dict[str, Any] = phases(called, epoch(inspected), log_lines(logs.stdout + logs.stderr),
                                 seconds)
    if cpu is not None:
        out["container_cpu_s"] = cpu
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key in runs[0] if all(key in run for run in runs)]
    out: dict[str, Any] = {key: round(statistics.median(run[key] for run in runs), 3)
                           for key in keys}
    out["total_runs_s"] = [round(run["total_s"], 3) for run in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {image: [] for image in args.images}
    for round_number in range(args.runs):
        order = args.images if round_number % 2 == 0 else args.images[::-1]
        for image in order:
            results[image].append(measure(image, args.model_dir))
    print(json.dumps({image: summary(runs) for image, runs in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
