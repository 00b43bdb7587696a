"""Our model beside a scikit-learn ``Pipeline`` with the same settings, each in a fresh process.

    python -m bench.inprocess --kind ours --model PATH --data TGZ      # PATH: the model dir
    python -m bench.inprocess --kind sklearn --model PATH --data TGZ   # PATH: pipeline.joblib

The scikit-learn side is what a user would deploy instead: ``TextCleaner`` → ``TfidfVectorizer``
→ ``MultinomialNB`` with the artifact's hyper-parameters, fitted on the same train split and
saved with joblib (:func:`fit_sklearn`, run once by ``bench.run``). Each kind is loaded in a new
interpreter and reports, on the same documents: load time, memory the model adds (RSS after
loading minus RSS before), one-document model time over the 200-post mix (p50, p99), documents
per second in one batch of 1,000, and accuracy on the whole test split. One JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.cli import Parser

MIX = 200  # the real test posts a one-document figure cycles through


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mix(texts: list[str], n: int = MIX) -> list[str]:
    """``n`` test posts spread over the split (every k-th), the one-document workload."""
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def batch_docs(texts: list[str]) -> list[str]:
    """The 1,000-post request: the first 1,000 test posts under the per-document limit."""
    return [t for t in texts if len(t) <= 20_000][:1000]


def fit_sklearn(model_dir: Path, data: str, out: Path) -> Path:
    """Fit and joblib-save the scikit-learn Pipeline with the artifact's hyper-parameters."""
    import joblib
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    from serving.data import load_splits
    from serving.hyperparameters import parse
    from serving.train import make_cleaner, make_tfidf

    manifest = json.loads((model_dir / "manifest.json").read_text())
    hp = parse(manifest["hyperparameters"])
    train = load_splits(data).train
    pipeline = make_pipeline(make_cleaner(hp, lemmatize=hp.lemmatize), make_tfidf(hp),
                             MultinomialNB(alpha=hp.alpha))
    pipeline.fit(train.texts, [train.label_names[i] for i in train.labels])
    joblib.dump(pipeline, out)
    return out


def measure(kind: str, model: Path, data: str) -> dict[str, Any]:
    from serving.data import load_splits

    test = load_splits(data).test
    names = test.label_names
    before = rss_mb()
    started = time.perf_counter()
    if kind == "ours":
        from serving.artifact import Model

        classifier = Model.load(model).classifier

        def predict(texts: list[str]) -> list[str]:
            return classifier.predict(texts)
    else:
        import joblib

        pipeline = joblib.load(model)

        def predict(texts: list[str]) -> list[str]:
            return list(pipeline.predict(texts))
    load_s = time.perf_counter() - started
    posts = mix(test.texts)
    for text in posts:
        predict([text])
    samples = []
    for _ in range(5):
        for text in posts:
            t = time.perf_counter()
            predict([text])
            samples.append(time.perf_counter() - t)
    batch = batch_docs(test.texts)
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        predict(batch)
        runs.append(time.perf_counter() - t)
    predicted = predict(test.texts)
    accuracy = float(np.mean([p == names[y] for p, y in zip(predicted, test.labels,
                                                               strict=True)]))
    us = np.asarray(samples) * 1e6
    return {"kind": kind, "load_s": round(load_s, 3), "model_mb": round(rss_mb() - before, 1),
            "one_doc_us_p50": round(float(np.percentile(us, 50)), 1),
            "one_doc_us_p99": round(float(np.percentile(us, 99)), 1),
            "batch_1000_docs_per_s": round(len(batch) / min(runs)),
            "accuracy": round(accuracy, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--kind", choices=("ours", "sklearn"), required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.kind, args.model, args.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
