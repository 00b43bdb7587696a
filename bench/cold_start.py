"""Containers of the image started and timed to their first ``/ping`` 200 (``make bench``'s
image section; ``bench/startup.py`` splits the same starts into phases).

All from the same image: ours (``docker run IMAGE serve``, any stage) and Docker's floor
(``docker run IMAGE true``, a standard-library hello world, the Flask + gunicorn hello world of
``bench/floor.py``), on host networking, polled on 127.0.0.1.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from serving.config import STAGES

HELLO_STDLIB = """
import http.server, os
class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Ping).serve_forever()
"""
POLL_S = 0.005  # readiness poll interval (a refused connection costs well under 1 ms here)


def container_cpu_s(cid: str) -> float | None:
    """CPU seconds (user + system) the container's processes have used so far, from its cgroup
    (v1 cpuacct or v2 cpu.stat, cgroupfs or systemd driver); None where neither is readable.
    Less sensitive than wall time to other load on a shared machine."""
    root = Path("/sys/fs/cgroup")
    for path, scale in ((root / "cpuacct/docker" / cid / "cpuacct.usage", 1e-9),
                        (root / "docker" / cid / "cpu.stat", 1e-6),
                        (root / "system.slice" / f"docker-{cid}.scope" / "cpu.stat", 1e-6)):
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpu.stat":
            text = next(line.split()[1] for line in text.splitlines()
                        if line.startswith("usage_usec"))
        return int(text) * scale
    return None


def docker_run(args: list[str], port: int) -> tuple[str, float]:
    """``docker run -d --rm --network host ARGS`` → (container id, seconds from the ``docker run``
    call to the first /ping 200 on 127.0.0.1:port, polled every 5 ms). Host networking: SageMaker
    reaches containers directly; a published port would add Docker's userland proxy, which is
    not the image's cost."""
    started = time.perf_counter()
    cid = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", *args],
                         check=True, capture_output=True, text=True).stdout.strip()
    if not loadgen.wait_ready("127.0.0.1", port, 60, interval=POLL_S):
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        raise RuntimeError("a container did not answer /ping within 60 s: docker run "
                           + " ".join(args[:12]))
    return cid, time.perf_counter() - started


def start_container(image: str, model_dir: Path, stage: str = "classify",
                    ) -> tuple[str, int, float]:
    """``docker run IMAGE serve`` bound to 127.0.0.1 with the model mounted, 2 workers, serving
    ``stage``; returns the container id, its port, seconds to the first /ping 200."""
    port = loadgen.free_port()
    cid, seconds = docker_run(
        ["-e", f"SAGEMAKER_BIND_TO_PORT={port}", "-e", "SERVING_HOST=127.0.0.1",
         "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=2", "-e", f"SERVING_STAGE={stage}",
         "-v", f"{model_dir.resolve()}:/opt/ml/model:ro", image, "serve"], port)
    return cid, port, seconds


def stage_cold_starts(image: str, model_dir: Path, runs: int) -> dict[str, float]:
    """First /ping 200 of the other stages' containers (median of ``runs``): the cold-start
    target is the image's, whatever role a deployment gives it."""
    out: dict[str, float] = {}
    for stage in STAGES[1:]:
        seconds = []
        for _ in range(runs):
            cid, _port, took = start_container(image, model_dir, stage)
            seconds.append(took)
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        out[f"first_ping_s_{stage}"] = round(statistics.median(seconds), 3)
    return out


def docker_floor_runs(image: str) -> dict[str, float]:
    """One round of the Docker floor, all from the same image: ``docker run --rm IMAGE true``
    (create, start, exit, remove: the whole life of a trivial container), a standard-library
    hello world (Docker's start plus Python's), and the Flask + gunicorn hello world
    (bench/floor.py mounted read-only, 2 workers) — each to its first /ping 200."""
    started = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "host", "--entrypoint", "true", image],
                   check=True, capture_output=True)
    out = {"docker_run_true_s": time.perf_counter() - started}
    bench_dir = Path(__file__).resolve().parent
    for name in ("hello_stdlib", "hello_flask_gunicorn"):
        port = loadgen.free_port()
        if name == "hello_stdlib":
            command = ["-e", f"PORT={port}", "--entrypoint", "python", image, "-c", HELLO_STDLIB]
        else:
            command = ["-v", f"{bench_dir}:/floor:ro", "--entrypoint", "python", image,
                       "-m", "gunicorn", "--chdir", "/floor", "--workers", "2", "--bind",
                       f"127.0.0.1:{port}", "floor:app"]
        cid, out[f"{name}_first_ping_s"] = docker_run(command, port)
        used = container_cpu_s(cid)
        if used is not None:
            out[f"{name}_container_cpu_s"] = used
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    return out


def docker_cold_start(image: str, model_dir: Path, runs: int) -> tuple[dict[str, Any], str, int]:
    """``docker run IMAGE serve`` → first /ping 200, ``runs`` times interleaved with the Docker
    floor (:func:`docker_floor_runs`); medians and every run's figure (the machine may be shared).
    The last container of ours is left running for the HTTP round: (figures, its id, its port)."""
    ours: list[float] = []
    cpu: list[float] = []
    floors: dict[str, list[float]] = {}
    cid, port = "", 0
    for run in range(runs):
        for name, seconds in docker_floor_runs(image).items():
            floors.setdefault(name, []).append(seconds)
        cid, port, seconds = start_container(image, model_dir)
        ours.append(seconds)
        used = container_cpu_s(cid)
        if used is not None:
            cpu.append(used)
        if run < runs - 1:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    median = statistics.median(ours)
    out: dict[str, Any] = {"first_ping_s": round(median, 3),
                           "first_ping_runs_s": [round(s, 3) for s in ours]}
    if cpu:  # CPU the container used until its first /ping 200 (all its processes)
        out["first_ping_container_cpu_s"] = round(statistics.median(cpu), 3)
    for name, values in floors.items():
        out[f"floor_{name}"] = round(statistics.median(values), 3)
        out[f"floor_{name}_runs"] = [round(s, 3) for s in values]
    out["first_ping_minus_hello_stdlib_s"] = round(
        median - statistics.median(floors["hello_stdlib_first_ping_s"]), 3)
    return out, cid, port
