"""Bounded load generation against 127.0.0.1: a latency client and a ``wrk`` wrapper."""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_host(host: str) -> None:
    if not host.startswith("127."):
        raise ValueError(f"load tests only target the loopback range, not {host}")


def wait_ready(host: str, port: int, timeout: float, interval: float = 0.1) -> bool:
    _check_host(host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


def latency(host: str, port: int, path: str, body: bytes | list[bytes], content_type: str, *,
            count: int, seconds: float, accept: str = "application/json") -> dict[str, float]:
    """Sequential requests (concurrency 1), at most ``count`` of them or ``seconds`` long,
    a new connection each; a list of bodies is cycled through."""
    _check_host(host)
    bodies = body if isinstance(body, list) else [body]
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": content_type, "Accept": accept}
    while len(samples) < count and time.monotonic() < deadline:
        started = time.perf_counter()
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", path, body=bodies[len(samples) % len(bodies)], headers=headers)
        response = response_body = conn.getresponse()
        response_body.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        samples.append(time.perf_counter() - started)
    ms = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "count": len(samples)}


LUA_GET = """
wrk.method = "GET"
"""
# The requests are built once per wrk thread, in init() (after wrk has set the Host header),
# and request() only hands the next one out: wrk's SCRIPTING notes that building a request
# each time "is expensive, when testing a high performance server one solution is to
# pre-generate all requests in init() and do a quick lookup in request()". wrk shares the
# machine's CPUs with the server, so formatting ~1.7 KB per request in Lua (what this did until
# round 12) cost the post runs ~7 us of wrk CPU more per request than the /ping runs, whose
# request wrk builds once itself.
LUA = """
wrk.method = "POST"
{headers}
local requests = {{}}
local n = 0
init = function(args)
  for i = 1, {count} do
    local f = io.open("{folder}/body" .. i, "rb")
    requests[i] = wrk.format(nil, nil, nil, f:read("*all"))
    f:close()
  end
end
request = function()
  n = n % {count} + 1
  return requests[n]
end
"""


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def latency_percentiles(out: str) -> dict[str, float]:
    """The ``Latency Distribution`` of ``wrk --latency`` (50/75/90/99 %) in ms:
    ``{"p50_ms": ..., "p75_ms": ..., "p90_ms": ..., "p99_ms": ...}``."""
    found = {}
    for percent, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$",
                                           out, flags=re.MULTILINE):
        found[f"p{percent}_ms"] = round(float(value) * _UNITS_MS[unit], 3)
    return found


def wrk(host: str, port: int, path: str, body: bytes | list[bytes] | None,
        content_type: str | None, *, connections: int, seconds: float,
        threads: int = 2) -> dict[str, Any]:
    """Run ``wrk`` (bounded by ``seconds``; a list of bodies is cycled through, keep-alive
    connections) with ``--latency`` and parse requests/s, errors and the latency percentiles
    (``p50_ms`` ... ``p99_ms``; at one connection, the latency of one request at a time)."""
    _check_host(host)
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        bodies = body if isinstance(body, list) else [body] if body else []
        for number, item in enumerate(bodies, 1):
            (Path(tmp) / f"body{number}").write_bytes(item)
        headers = f'wrk.headers["Content-Type"] = "{content_type}"' if content_type else ""
        script = Path(tmp) / "post.lua"
        script.write_text(LUA.format(folder=tmp, count=len(bodies), headers=headers)
                          if bodies else LUA_GET)
        out = subprocess.run(
            ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d",
             f"{max(1, int(seconds))}s", "--timeout", "5s", "--latency", "-s", str(script),
             f"http://{host}:{port}{path}"],
            check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        connect, _read, write, timeout = (int(g) for g in socket_errors.groups())
        errors += connect + write + timeout  # read errors = server closing (no keep-alive)
    return {"requests_per_s": round(float(rate.group(1)) if rate else 0.0),
            "errors": errors, **latency_percentiles(out), "raw": out}


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Benchmark results ({results['date']})", "",
             f"Machine: {results['machine']['cpus']} CPUs, Python "
             f"{results['machine']['python']}, load average before "
             f"{results['machine']['load_before']:.2f}.", ""]
    for section, values in results.items():
        if section in ("machine", "date") or not isinstance(values, dict):
            continue
        lines += [f"## {section}", "", "| metric | value |", "| --- | --- |"]
        for key, value in values.items():
            if isinstance(value, dict):  # one level of nesting: "ours.accuracy"
                lines += [f"| {key}.{sub} | {item} |" for sub, item in value.items()]
            else:
                lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)
