"""Peak memory a single hostile request adds to a worker (the README's "≤ 6 MB request" figures).

Each case runs in a fresh process that loads the model and warms the stage up like a gunicorn
worker, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), sends one request through
the Flask app and reads ``VmHWM`` - ``VmRSS`` before: the request's own peak. Every body is at
most 6 MB (6,291,456 bytes).

    python -m bench.hostile_memory MODEL_DIR [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

LIMIT = 6 * 1024 * 1024
RECORDIO = "application/x-recordio-protobuf"


def _sparse_topics(n: int | None, width: int, n_keys: int) -> bytes:
    """n records (as many as fit in 6 MB when None) of one sparse topic tensor each."""
    from serving import record_pb2, recordio

    record = record_pb2.Record()
    tensor = record.label["topic_weights"].float32_tensor
    tensor.keys.extend(range(n_keys))
    tensor.values.extend([0.5] * n_keys)
    tensor.shape.append(width)
    one = recordio.encode_records([record])
    return one * (LIMIT // len(one) if n is None else n)


def _neighbours_body(m: int) -> bytes:
    ones = b",".join([b"1"] * m)
    return b'{"predictions": [{"labels": [' + ones + b'], "distances": [' + ones + b"]}]}"


def _fill(unit: bytes, head: bytes = b"", tail: bytes = b"", sep: bytes = b",") -> bytes:
    n = (LIMIT - len(head) - len(tail)) // (len(unit) + len(sep))
    return head + sep.join([unit] * n) + tail


def cases(model_dir: Path) -> dict[str, tuple[str, str, str, Callable[[], bytes], dict]]:
    """name -> (stage, content type, accept, body builder, extra headers)."""
    from serving.artifact import Model

    model = Model.load(model_dir)
    k = model.num_topics or 20
    catalog = len(model.catalog)
    row = orjson.dumps({"topic_weights": [1.0 / k] * k})
    return {
        "topics-to-knn: 6 MB of sparse RecordIO, shape [2**24], 16,384 keys a record":
            ("topics-to-knn", RECORDIO, "text/csv", lambda: _sparse_topics(None, 2**24, 16_384),
             {}),
        "topics-to-knn: 6 MB of empty sparse records of width num_topics":
            ("topics-to-knn", RECORDIO, "text/csv", lambda: _sparse_topics(None, k, 0), {}),
        "topics-to-knn: 6 MB JSON of topic weights (10,000 records)":
            ("topics-to-knn", "application/json", "application/json",
             lambda: _fill(row, b'{"predictions": [', b"]}"), {}),
        "recommend: one record with 6 MB of neighbours":
            ("recommend", "application/json", "application/json",
             lambda: _neighbours_body((LIMIT - 100) // 4), {}),
        "recommend: 10,000 records x 30 neighbours, top_k=30":
            ("recommend", "application/jsonlines", "application/json",
             lambda: b"".join(orjson.dumps({"labels": [(7 * i + j) % catalog for j in range(30)],
                                            "distances": [0.5] * 30}) + b"\n"
                              for i in range(10_000)),
             {"X-Amzn-SageMaker-Custom-Attributes": "top_k=30"}),
        "ntm-features: 10,000 one-word documents, dense JSON answer":
            ("ntm-features", "application/jsonlines", "application/json",
             lambda: b'"space"\n' * 10_000, {}),
        "ntm-features: 10,000 documents of 600 bytes, RecordIO answer":
            ("ntm-features", "application/jsonlines", RECORDIO,
             lambda: (orjson.dumps(" ".join(["orbit launch shuttle engine car"] * 19)) + b"\n")
             * 10_000, {}),
        "classify: one 6 MB document of two-letter words":
            ("classify", "text/plain", "application/json", lambda: b"ab " * (LIMIT // 3), {}),
        "classify: one 6 MB document of distinct words":
            ("classify", "text/plain", "application/json",
             lambda: b" ".join(b"w%07d" % i for i in range(LIMIT // 9)), {}),
        "classify: 6 MB header folded over 1.5 M lines":
            ("classify", "text/plain", "application/json",
             lambda: b"Subject: x\n" + b" more\n" * ((LIMIT - 20) // 6) + b"\nbody", {}),
        "classify: 10,000 documents of 600 bytes, top_k=20":
            ("classify", "application/jsonlines", "application/json",
             lambda: (orjson.dumps(" ".join(["orbit launch shuttle engine car"] * 19)) + b"\n")
             * 10_000, {"X-Amzn-SageMaker-Custom-Attributes": "top_k=20"}),
        "classify: 6 MB JSON array of empty objects":
            ("classify", "application/json", "application/json",
             lambda: _fill(b"{}", b"[", b"]"), {}),
        "recommend: 6 MB JSON Lines of arrays of empty arrays":
            ("recommend", "application/jsonlines", "application/json",
             lambda: (b'{"x": [' + b",".join([b"[]"] * 20_000) + b"]}\n") * 100, {}),
        "classify: 6 MB JSON array of two-letter strings":
            ("classify", "application/json", "application/json",
             lambda: _fill(b'"ab"', b"[", b"]"), {}),
        "any stage: 6 MB of '[' (deep JSON)":
            ("recommend", "application/json", "application/json", lambda: b"[" * LIMIT, {}),
    }


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def child(model_dir: str, stage: str, content_type: str, accept: str, body_file: str,
          headers: dict[str, str]) -> dict:
    from serving.app import Server, create_app
    from serving.artifact import Model
    from serving.config import Settings

    server = Server(Model.load(model_dir), Settings.from_env({"SERVING_STAGE": stage,
                                                              "SERVING_LOG_LEVEL": "CRITICAL"}))
    server.warm_up()
    client = create_app(server).test_client()
    body = Path(body_file).read_bytes()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    started = time.perf_counter()
    response = client.post("/invocations", data=body, headers={
        "Content-Type": content_type, "Accept": accept, **headers})
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    message = orjson.loads(response.get_data()).get("message", "") if \
        response.status_code >= 400 else ""
    return {"status": response.status_code, "body_bytes": len(body),
            "answer_bytes": len(response.get_data()), "peak_rise_mb": (peak - before) / 2**20,
            "seconds": round(seconds, 3), "message": message[:120]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, content_type, accept, body_file, headers = args.child
        print(json.dumps(child(args.model_dir, stage, content_type, accept, body_file,
                               json.loads(headers))))
        return 0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (stage, content_type, accept, build, headers) in cases(
                Path(args.model_dir)).items():
            body = build()
            assert len(body) <= LIMIT, (name, len(body))
            body_file = Path(tmp) / "body"
            body_file.write_bytes(body)
            out = subprocess.run(
                [sys.executable, "-m", "bench.hostile_memory", args.model_dir, "--child", stage,
                 content_type, accept, str(body_file), json.dumps(headers)],
                capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                results[name] = {"error": out.stderr[-500:]}
            else:
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[name]
            print(f"{name}: {r.get('status')} peak +{r.get('peak_rise_mb', float('nan')):.1f} MB"
                  f" in {r.get('seconds')} s {r.get('message', r.get('error', ''))[:100]}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    worst = max((r.get("peak_rise_mb", 0.0) for r in results.values()), default=0.0)
    print(f"worst peak rise: {worst:.1f} MB")
    return 0 if worst <= 100 and all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
