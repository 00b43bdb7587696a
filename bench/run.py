"""Benchmarks for the targets in the issues; writes bench/results/latest.{json,md}.

    python -m bench.run --model-dir DIR --data ../shared/data/20news-bydate.tar.gz [--image IMG]

Each figure stands beside a reference measured in the same run, and the ratio is reported:
our model beside a scikit-learn Pipeline with the same settings (``bench.inprocess``: speed,
memory, accuracy), our server beside a Flask + gunicorn hello world and beside a plain WSGI
hello world behind our own front end (``bench.floor``: latency over the 200-post mix,
concurrency-8 throughput, PSS, start-up) measured in interleaved rounds, and what the host's
idle moments cost the same work (``bench.idle_gap``).
Every load test is bounded in count and time and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import inprocess, loadgen, memory
from bench.cold_start import docker_cold_start, stage_cold_starts
from serving.cli import Parser

RESULTS = Path(__file__).resolve().parent / "results"


def codec_times() -> dict[str, Any]:
    """Wire-format costs for 1,000 documents (best of 5): RecordIO-protobuf encode/decode of
    2,000-word counts, NTM CSV round trip, classifier output encoding."""
    import scipy.sparse as sp

    from serving import formats, recordio
    from serving.codecs import encode_classify
    from serving.mediatypes import MediaType

    def best_ms(fn: Any) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        return round(min(runs) * 1e3, 2)

    X = sp.random(1000, 2000, density=0.05, format="csr", random_state=0, dtype=np.float32)
    X.data = np.ceil(X.data * 7)
    data = recordio.encode_sparse_rows(X)
    csv = MediaType("text/csv")
    body = formats.encode_ntm_input(X, csv)
    probs = np.random.default_rng(0).dirichlet(np.ones(20), 1000)
    idx = np.argsort(-probs, axis=1)[:, :3]
    top = np.take_along_axis(probs, idx, axis=1)
    names = [f"class.{i}" for i in range(20)]
    return {
        "recordio_encode_1000x2000_ms": best_ms(lambda: recordio.encode_sparse_rows(X)),
        "recordio_decode_1000x2000_ms": best_ms(lambda: recordio.decode_matrix(data, n_cols=2000)),
        "ntm_csv_encode_ms": best_ms(lambda: formats.encode_ntm_input(X, csv)),
        "ntm_csv_decode_ms": best_ms(lambda: formats.decode_ntm_input(body, csv, 2000)),
        "classify_json_encode_1000_ms": best_ms(
            lambda: encode_classify(names, idx, top, MediaType("application/json"))),
    }


def median_doc(texts: list[str]) -> str:
    """The test document of median length: the "one typical document" of the targets."""
    return sorted(texts, key=len)[len(texts) // 2]


def start_server(model_dir: Path, workers: int, floor: str | None = None,
                 ) -> tuple[subprocess.Popen, int, float]:
    """Our server (nginx → gunicorn, the model), the floor (``"gunicorn"``: gunicorn → Flask
    hello world) or the front end's floor (``"nginx"``: our nginx → gunicorn with a plain
    WSGI hello world); returns the process, its port and seconds to the first /ping 200."""
    port = loadgen.free_port()
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SERVING_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
           "SERVING_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "serving.serve"]
    if floor == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
                   f"127.0.0.1:{port}", "--access-logfile", "-", "bench.floor:app"]
    elif floor == "nginx":
        command = [sys.executable, "-m", "bench.floor"]
    RESULTS.mkdir(exist_ok=True)
    # Request logs go to a file, as the container's go to Docker's log driver: the same work.
    log = (RESULTS / {None: "server.log", "gunicorn": "floor.log",
                      "nginx": "floor_nginx.log"}[floor]).open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not loadgen.wait_ready("127.0.0.1", port, 60, interval=0.01):
        proc.kill()
        raise RuntimeError("server did not start")
    return proc, port, time.perf_counter() - started


def http_round(host: str, port: int, posts: list[bytes], seconds: float) -> dict[str, Any]:
    """One round, as issue 13 measured: c=1 latency over the post mix and on ``/ping`` (``wrk
    -t1 -c1 --latency``, one keep-alive connection, one request at a time; ``/ping`` through
    the same front end is the floor of this stack), then c=8 throughput on the mix and on
    ``/ping``."""
    one = loadgen.wrk(host, port, "/invocations", posts, "text/plain", connections=1,
                      seconds=seconds)
    ping_one = loadgen.wrk(host, port, "/ping", None, None, connections=1, seconds=seconds)
    rps = loadgen.wrk(host, port, "/invocations", posts, "text/plain", connections=8,
                      seconds=seconds)
    ping = loadgen.wrk(host, port, "/ping", None, None, connections=8, seconds=seconds)
    return {"p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"],
            "ping_p50_ms": ping_one["p50_ms"], "ping_p99_ms": ping_one["p99_ms"],
            "rps": rps["requests_per_s"], "ping_rps": ping["requests_per_s"],
            "errors": rps["errors"] + one["errors"]}


def batch_rate(host: str, port: int, texts: list[str], seconds: float) -> dict[str, Any]:
    body = b"".join(orjson.dumps(t) + b"\n" for t in inprocess.batch_docs(texts))
    batch = loadgen.latency(host, port, "/invocations", body, "application/jsonlines",
                            count=20, seconds=seconds * 2, accept="application/jsonlines")
    return {"batch_1000_jsonl_docs_per_s": round(1000 / (batch["p50_ms"] / 1000)),
            "batch_1000_jsonl_bytes": len(body)}


def compare_servers(ports: dict[str, int], posts: list[bytes], seconds: float,
                    rounds: int) -> dict[str, dict[str, Any]]:
    """Interleaved rounds of :func:`http_round` on each server; medians of the rounds
    (``errors_c8``: non-2xx answers and socket errors at c=1 and c=8, summed)."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, port in ports.items():
            samples[name].append(http_round("127.0.0.1", port, posts, seconds))
    out = {}
    for name, runs in samples.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "errors"}
        out[name] = {"one_doc_latency_ms_p50": med["p50_ms"],
                     "one_doc_latency_ms_p99": med["p99_ms"],
                     "ping_latency_ms_p50_c1": med["ping_p50_ms"],
                     "ping_latency_ms_p99_c1": med["ping_p99_ms"],
                     "one_doc_over_own_ping_p50_c1": round(
                         med["p50_ms"] / max(med["ping_p50_ms"], 1e-9), 2),
                     "requests_per_s_c8": round(med["rps"]),
                     "ping_per_s_c8": round(med["ping_rps"]),
                     "ratio_to_ping": round(med["rps"] / max(med["ping_rps"], 1), 3),
                     "errors_c8": sum(r["errors"] for r in runs)}
    return out


def in_process(model_dir: Path, data: str) -> dict[str, Any]:
    """Our model and the scikit-learn Pipeline, each in a fresh interpreter (bench.inprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = inprocess.fit_sklearn(model_dir, data, Path(tmp) / "pipeline.joblib")
        found = {}
        for kind, path in (("ours", model_dir), ("sklearn", pipeline)):
            out = subprocess.run([sys.executable, "-m", "bench.inprocess", "--kind", kind,
                                  "--model", str(path), "--data", data], check=True,
                                 capture_output=True, text=True, timeout=900).stdout
            found[kind] = json.loads(out.strip().splitlines()[-1])
    ours, sk = found["ours"], found["sklearn"]
    ratios = {f"{key}_ours_over_sklearn": round(ours[key] / max(sk[key], 1e-9), 3)
              for key in ("one_doc_us_p50", "one_doc_us_p99", "batch_1000_docs_per_s",
                          "model_mb", "load_s")}
    return {"ours": ours, "sklearn_pipeline": sk, "ratios": ratios}


def idle_gap(model_dir: Path, data: str) -> dict[str, Any]:
    """One post's and one ``/ping``'s CPU in the WSGI path, back to back and after the thread
    slept (bench.idle_gap, a fresh interpreter): what the host's idle moments cost."""
    out = subprocess.run([sys.executable, "-m", "bench.idle_gap", "--model-dir", str(model_dir),
                          "--data", data], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


# The Docker floor's server: the image's own Python answering GET /ping with the standard library.
def host_probe_ms() -> float:
    """A fixed CPU workload (a Python loop and a numpy sort), best of 5 in ms: how fast this
    host is at that moment. Measured before each section, so a host that sped up or slowed down
    between sections (this VM's did, by up to 2x within minutes) shows in the results."""
    values = np.random.default_rng(0).random(100_000)

    def work() -> None:
        total = 0
        for i in range(50_000):
            total += i * i
        np.sort(values)

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def interleaved_p50(ports: dict[str, int], body: list[bytes], rounds: int = 10,
                    ) -> dict[str, float]:
    """One-document p50 of several servers measured in alternating rounds of 200 requests,
    so that drift in the machine's load affects them alike; median of the rounds' p50s."""
    samples: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, port in ports.items():
            samples[name].append(loadgen.latency("127.0.0.1", port, "/invocations", body,
                                                 "text/plain", count=200, seconds=10)["p50_ms"])
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


def artifact_facts(model_dir: Path) -> dict[str, Any]:
    """What the benchmarked artifact is: when it was written, its weights' type, whether its
    hash tables are saved (memory-mapped) or built at load. An artifact of an older layout
    measures older code (``make bench`` retrains when the code changed)."""
    import numpy as np

    manifest = json.loads((model_dir / "manifest.json").read_text())
    classifier = model_dir / "classifier"
    weights = np.load(classifier / "log_prob.npy", mmap_mode="r", allow_pickle=False)
    return {"created": manifest.get("created"), "weights_dtype": str(weights.dtype),
            "saved_hash_tables": any(classifier.glob("wordhash_*.npy"))}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--image", default=os.environ.get("IMAGE", "sm-text-pipeline:latest"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--docker-runs", type=int, default=5,
                        help="cold starts of the image, interleaved with the Docker floor's")
    args = parser.parse_args(argv)
    from serving.data import load_splits

    texts = load_splits(args.data).test.texts
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": os.getloadavg()[0]},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if not args.skip_train:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "serving.train", "--data", args.data,
                            "--model-dir", f"{tmp}/m", "--output-data-dir", f"{tmp}/o"],
                           check=True, capture_output=True)
            metrics = json.loads(Path(f"{tmp}/m/metrics.json").read_text())
            results["training"] = {"seconds": round(time.perf_counter() - started, 1),
                                   "accuracy": metrics["accuracy"],
                                   "macro_f1": metrics["macro_f1"]}
    results["artifact"] = artifact_facts(args.model_dir)
    probes = results["host_probe_ms"] = {"model": host_probe_ms()}
    results["model"] = in_process(args.model_dir, args.data)
    results["idle_gap"] = idle_gap(args.model_dir, args.data)
    results["codecs"] = codec_times()
    posts = [t.encode() for t in inprocess.mix(texts)]
    proc, port, first_ping = start_server(args.model_dir, workers=2)
    floor, floor_port, floor_ping = start_server(args.model_dir, workers=2, floor="gunicorn")
    front, front_port, _ = start_server(args.model_dir, workers=2, floor="nginx")
    container = None
    try:
        probes["servers"] = host_probe_ms()
        both = compare_servers({"server": port, "floor": floor_port,
                                "floor_behind_our_front_end": front_port}, posts, args.seconds,
                               args.rounds)
        server, base = both["server"], both["floor"]
        results["floor_behind_our_front_end"] = both["floor_behind_our_front_end"]
        front.terminate()
        front.wait(30)
        probes["batch"] = host_probe_ms()
        server.update(batch_rate("127.0.0.1", port, texts, args.seconds))
        pss = memory.report(proc.pid, top=12)
        server.update(pss_mb_all_processes=pss["pss_mb"], first_ping_s=round(first_ping, 2),
                      accuracy=results["model"]["ours"]["accuracy"])
        results["server_pss_by_mapping_mb"] = pss["by_mapping_mb"]
        base.update(pss_mb_all_processes=memory.pss_mb(floor.pid),
                    first_ping_s=round(floor_ping, 2))
        results["server"], results["floor"] = server, base
        results["server_over_floor"] = {
            key: round(server[key] / max(base[key], 1e-9), 3)
            for key in ("one_doc_latency_ms_p50", "one_doc_latency_ms_p99", "requests_per_s_c8",
                        "pss_mb_all_processes", "first_ping_s")}
        floor.terminate()
        floor.wait(30)
        if subprocess.run(["docker", "image", "inspect", args.image],
                          capture_output=True).returncode == 0:
            probes["docker"] = host_probe_ms()
            cold, container, cport = docker_cold_start(args.image, args.model_dir,
                                                        args.docker_runs)
            docker = http_round("127.0.0.1", cport, posts, args.seconds)
            size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", args.image],
                                  check=True, capture_output=True, text=True).stdout
            p50 = interleaved_p50({"local": port, "docker": cport}, posts)
            docker.update(**cold, **stage_cold_starts(args.image, args.model_dir, 3),
                          image_mb=round(int(size) / 1e6, 1),
                          interleaved_p50_ms_local=p50["local"],
                          interleaved_p50_ms_docker=p50["docker"],
                          latency_vs_local=round(p50["docker"] / p50["local"], 3))
            results["docker"] = docker
    finally:
        for process in (proc, floor, front):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "latest.md").write_text(loadgen.markdown(results))
    print(loadgen.markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
