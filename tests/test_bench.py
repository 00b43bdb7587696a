"""bench/loadgen.py's wrk output parsing and bench/memory.py's PSS by mapping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import loadgen, memory

WRK_OUT = """Running 2s test @ http://127.0.0.1:8080/invocations
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   702.51us  210.04us   4.12ms   91.20%
    Req/Sec     1.41k    80.12     1.52k    70.00%
  Latency Distribution
     50%  635.00us
     75%  710.00us
     90%    1.02ms
     99%    2.50ms
  2820 requests in 2.00s, 1.02MB read
Requests/sec:   1409.87
Transfer/sec:    520.01KB
"""


def test_wrk_latency_distribution_in_ms() -> None:
    assert loadgen.latency_percentiles(WRK_OUT) == {
        "p50_ms": 0.635, "p75_ms": 0.71, "p90_ms": 1.02, "p99_ms": 2.5}
    assert loadgen.latency_percentiles("     99%    1.50s\n") == {"p99_ms": 1500.0}
    assert loadgen.latency_percentiles("no distribution here") == {}


class _Recorder(BaseHTTPRequestHandler):
    """Keeps every POST's path, headers and body, answers 200 on a kept connection."""
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_script_cycles_the_bodies_in_order() -> None:
    """The Lua script (its requests built once per thread, in init) hands them out in turn:
    every request carries the next body of the list, with its Content-Type and length."""
    bodies = [b"first post", "second \u00e9".encode(), b"x" * 5000]
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = loadgen.wrk("127.0.0.1", server.server_address[1], "/invocations", bodies,
                          "text/plain", connections=1, seconds=1, threads=1)
    finally:
        server.shutdown()
        server.server_close()
    seen = list(_Recorder.seen)
    assert out["errors"] == 0 and len(seen) >= 6
    assert {(path, kind) for path, kind, _ in seen} == {("/invocations", "text/plain")}
    # (wrk asks for one request before the connection's first, so the cycle may start at any
    # body; it is the order that counts)
    start = bodies.index(seen[0][2])
    assert [body for *_, body in seen] == [bodies[(start + i) % 3] for i in range(len(seen))]


def test_mapping_names() -> None:
    assert memory.mapping_name("") == "[anon]"
    assert memory.mapping_name("[heap]") == "[heap]"
    assert memory.mapping_name("[anon:some name]") == "[anon]"
    assert memory.mapping_name("/opt/ml/model/classifier/log_prob.npy") == "log_prob.npy"
    assert memory.mapping_name("/tmp/x (deleted)") == "x"


def test_pss_by_mapping_sums_to_the_process_pss() -> None:
    # A child of its own with no children (pss_mb sums a whole process tree, and this test
    # process may have servers of other tests below it).
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); "
                              "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        pid = child.pid
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        by_mapping = memory.pss_by_mapping([pid])
        assert "[heap]" in by_mapping or "[anon]" in by_mapping
        assert list(by_mapping.values()) == sorted(by_mapping.values(), reverse=True)
        assert memory.process_tree(pid) == [pid]
        rollup = memory.pss_mb(pid)
        # the same Pss lines, summed per mapping then rounded: equal up to rounding and the
        # few pages the process touched between the two reads
        assert abs(sum(by_mapping.values()) - rollup) < 2 + 0.05 * len(by_mapping)
        assert memory.process_tree(os.getpid())[0] == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_artifact_facts_name_the_benchmarked_layout(tiny_model_dir) -> None:
    from bench.run import artifact_facts

    facts = artifact_facts(tiny_model_dir)
    manifest = __import__("json").loads((tiny_model_dir / "manifest.json").read_text())
    assert facts["created"] == manifest["created"]
    assert facts["weights_dtype"] in ("float16", "float32")
    assert facts["saved_hash_tables"] is True  # what this code's training writes


def test_make_retrains_when_the_code_that_writes_the_artifact_changes() -> None:
    """`make bench`/`make run` serve MODEL_DIR; a model of an older layout would measure older
    code. make -n with the model newer than everything: nothing to do; a newer serving/*.py
    (an artifact written by older code): training runs."""
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        stamp = Path(tmp) / "data.path"
        stamp.write_text("../shared/data/20news-bydate.tar.gz")
        manifest = model / "manifest.json"
        manifest.write_text("{}")
        newest = max(p.stat().st_mtime for p in [*root.glob("serving/*.py"),
                                                  root / "pyproject.toml"])

        def plan(model_time: float) -> str:
            os.utime(stamp, (newest - 10, newest - 10))
            os.utime(manifest, (model_time, model_time))
            return subprocess.run(
                ["make", "-n", "-C", str(root), f"WORK={tmp}", f"MODEL_DIR={model}",
                 f"{model}/manifest.json"], capture_output=True, text=True, check=True).stdout

        assert "serving.train" not in plan(newest + 10)
        assert "serving.train" in plan(newest - 5)


def test_front_end_floor_answers_like_a_server() -> None:
    import io

    from bench.floor import ANSWER, transport

    seen = []
    body = transport({"PATH_INFO": "/invocations", "CONTENT_LENGTH": "5",
                      "wsgi.input": io.BytesIO(b"hello")}, lambda *a: seen.append(a))
    assert body == [ANSWER] and seen[0][0] == "200 OK"
    assert ("Content-Length", str(len(ANSWER))) in seen[0][1]
    assert transport({"PATH_INFO": "/ping"}, lambda *a: None) == [b'{"status":"ok"}']


def test_idle_gap_reports_each_requests_cpu_with_and_without_idle(tiny_model_dir,
                                                                  tiny_corpus) -> None:
    import json

    out = subprocess.run([sys.executable, "-m", "bench.idle_gap", "--model-dir",
                          str(tiny_model_dir), "--data", str(tiny_corpus)],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    found = json.loads(out.strip().splitlines()[-1])
    for name in ("post", "ping"):
        values = [found[f"{name}_cpu_us_p50_after_{gap}ms_idle"] for gap in ("0", "0.5", "2")]
        assert all(value > 0 for value in values), found
        assert found[f"{name}_after_2ms_over_back_to_back"] == round(values[2] / values[0], 2)
    assert found["post_cpu_us_p50_after_0ms_idle"] > found["ping_cpu_us_p50_after_0ms_idle"]
