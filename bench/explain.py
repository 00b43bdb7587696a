"""Cost of ``explain=5`` per post against the plain request (issue 14's target: within 2x).

    python -m bench.explain --model-dir DIR --data ../shared/data/20news-bydate.tar.gz

Writes bench/results/explain.{json,md}. Two measurements, both interleaved post by post (plain
and explained alternate, so machine load hits both alike):

- model time in-process: ``TextClassifier.top_k([post], 3)`` vs ``Explainer.top_k([post], 3, 5)``
  (cleaning, TF-IDF, naive Bayes, top-k; plus the explanation), best of 3 per post;
- HTTP, concurrency 1, one keep-alive connection, JSON answer: the server (nginx + gunicorn,
  1 worker) on 127.0.0.1, with and without ``X-Amzn-SageMaker-Custom-Attributes: explain=5``.

Bounded: at most ``--posts`` posts and ``--seconds`` per phase; talks to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import loadgen
from serving.cli import Parser

RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
ATTR = "X-Amzn-SageMaker-Custom-Attributes"


def _summary(plain: list[float], explained: list[float], unit: float) -> dict[str, Any]:
    a, b = np.asarray(plain) * unit, np.asarray(explained) * unit
    return {"posts": len(a), "plain_p50": round(float(np.median(a)), 1),
            "explain_p50": round(float(np.median(b)), 1),
            "plain_mean": round(float(a.mean()), 1), "explain_mean": round(float(b.mean()), 1),
            "ratio_of_means": round(float(b.mean() / a.mean()), 2),
            "median_per_post_ratio": round(float(np.median(b / a)), 2)}


def model_times(model_dir: Path, posts: list[str], seconds: float) -> dict[str, Any]:
    from serving.artifact import Model
    from serving.explain import Explainer

    classifier = Model.load(model_dir).classifier
    explainer = Explainer(classifier)
    for post in posts[:50]:  # warm up
        classifier.top_k([post], 3)
        explainer.top_k([post], 3, 5)
    plain, explained = [], []
    deadline = time.monotonic() + seconds
    for number, post in enumerate(posts):
        if time.monotonic() > deadline:
            break
        best = [np.inf, np.inf]
        for round_ in range(6):
            which = (round_ + number) % 2
            started = time.perf_counter()
            if which:
                explainer.top_k([post], 3, 5)
            else:
                classifier.top_k([post], 3)
            best[which] = min(best[which], time.perf_counter() - started)
        plain.append(best[0])
        explained.append(best[1])
    out = _summary(plain, explained, 1e6)
    batch = posts[:1000]
    runs: dict[str, list[float]] = {"plain": [], "explain": []}
    for _ in range(3):
        for name, fn in (("plain", lambda: classifier.top_k(batch, 3)),
                         ("explain", lambda: explainer.top_k(batch, 3, 5))):
            started = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - started)
    out["batch_docs"] = len(batch)
    out["batch_plain_docs_per_s"] = round(len(batch) / min(runs["plain"]))
    out["batch_explain_docs_per_s"] = round(len(batch) / min(runs["explain"]))
    return out


def http_times(model_dir: Path, posts: list[str], seconds: float) -> dict[str, Any]:
    port = loadgen.free_port()
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SERVING_STAGE": "classify",
           "SAGEMAKER_BIND_TO_PORT": str(port), "SERVING_HOST": HOST,
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        log = (Path(tmp) / "server.log").open("wb")  # request logs to a file, as in bench.run
        proc = subprocess.Popen([sys.executable, "-m", "serving.serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            if not loadgen.wait_ready(HOST, port, 60):
                raise RuntimeError("the server did not answer /ping in 60 s")
            return _http_loop(port, posts, seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _http_loop(port: int, posts: list[str], seconds: float) -> dict[str, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    base = {"Content-Type": "text/plain", "Accept": "application/json"}
    variants = (base, {**base, ATTR: "explain=5"})
    plain, explained = [], []
    bytes_out = [0, 0]
    deadline = time.monotonic() + seconds
    for number, post in enumerate(posts):
        if time.monotonic() > deadline:
            break
        body = post.encode("utf-8")
        took = [0.0, 0.0]
        for which in ((0, 1) if number % 2 else (1, 0)):
            started = time.perf_counter()
            conn.request("POST", "/invocations", body=body, headers=variants[which])
            response = conn.getresponse()
            answer = response.read()
            took[which] = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"/invocations answered {response.status}: {answer[:200]!r}")
            bytes_out[which] += len(answer)
        plain.append(took[0])
        explained.append(took[1])
    conn.close()
    out = _summary(plain, explained, 1e3)
    out["plain_bytes_per_answer"] = round(bytes_out[0] / max(len(plain), 1))
    out["explain_bytes_per_answer"] = round(bytes_out[1] / max(len(plain), 1))
    return out


def markdown(results: dict[str, Any]) -> str:
    m, h = results["model"], results["http"]
    return "\n".join([
        f"# explain=5 vs plain ({results['date']}, {results['posts']} test posts, load "
        f"{results['load_before']:.1f} on {results['cpus']} CPUs: noisy)", "",
        "| | plain | explain=5 | ratio of means | median per-post ratio |",
        "| --- | --- | --- | --- | --- |",
        f"| model time per post, p50 / mean (µs) | {m['plain_p50']} / {m['plain_mean']} | "
        f"{m['explain_p50']} / {m['explain_mean']} | {m['ratio_of_means']} | "
        f"{m['median_per_post_ratio']} |",
        f"| HTTP per post, p50 / mean (ms) | {h['plain_p50']} / {h['plain_mean']} | "
        f"{h['explain_p50']} / {h['explain_mean']} | {h['ratio_of_means']} | "
        f"{h['median_per_post_ratio']} |",
        f"| batch of {m['batch_docs']} (docs/s, in-process) | {m['batch_plain_docs_per_s']} | "
        f"{m['batch_explain_docs_per_s']} | | |",
        f"| answer size (bytes) | {h['plain_bytes_per_answer']} | "
        f"{h['explain_bytes_per_answer']} | | |", ""])


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase")
    args = parser.parse_args(argv)
    from serving.data import load_splits

    test = load_splits(args.data).test
    if test is None:
        parser.error(f"{args.data} has no test split")
    step = max(1, len(test.texts) // args.posts)
    posts = test.texts[::step][: args.posts]  # spread over every newsgroup
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "posts": len(posts),
        "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
        "model": model_times(args.model_dir, posts, args.seconds),
        "http": http_times(args.model_dir, posts, args.seconds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explain.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "explain.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
