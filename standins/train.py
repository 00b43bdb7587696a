"""Train the NTM and k-NN STAND-INS locally (not AWS code; AWS's built-ins do not run offline).

    python -m standins.train all --ntm-data O/ntm --num-topics 50 --k 50 --out DIR
    python -m standins.train ntm --ntm-data O/ntm --num-topics 50 --out DIR/ntm \\
        [--topic-vectors DIR/topic_vectors.npy]
    python -m standins.train knn --topic-vectors DIR/topic_vectors.npy --k 50 --out DIR/knn

``O/ntm`` is what ``python -m serving.train --output-data-dir O`` writes: ``train/*.pbr``
(sparse RecordIO word counts), ``auxiliary/vocab.txt``, ``ntm_data.json``.  ``all`` writes
``DIR/ntm/`` and ``DIR/knn/`` (each a model directory as SageMaker unpacks it to /opt/ml/model,
plus that directory as ``model.tar.gz`` inside it), ``DIR/topic_vectors.npy`` (the training
documents' topic weights, as a batch transform of NTM would give) and ``DIR/summary.json``.
k-NN labels are the training documents' row indices, which index ``catalog.jsonl``. The k-NN
index is built from the L2-normalised vectors, exactly what scripts/knn_data.py writes into the
real k-NN training CSV (serving/neighbours.py); with a catalog (``--ntm-data``), the summary says
how many neighbours each training document needs for 10 distinct threads (``neighbours_needed``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving import jsondoc, neighbours, shards
from serving.cli import Parser
from standins import knn, topics
from standins.knn import KnnIndex
from standins.topics import NtmModel

__all__ = ["KnnIndex", "NtmModel", "knn_query", "ntm_infer", "train_knn", "train_ntm"]
TARBALL = "model.tar.gz"


def write_tarball(model_dir: Path) -> Path:
    """``model_dir/model.tar.gz`` holding the directory's files at the archive root
    (reproducible: sorted, mtime 0, root-owned)."""
    model_dir = Path(model_dir)
    target = model_dir / TARBALL
    tmp = model_dir / (TARBALL + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for path in sorted(model_dir.rglob("*")):
            if path.name in (TARBALL, tmp.name) or not path.is_file():
                continue
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(model_dir)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = 0o644
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    os.replace(tmp, target)
    return target


def read_counts(train_dir: Path | str, feature_dim: int | None = None) -> Any:
    """Every RecordIO shard (``*.pbr``, ``*.rec``, ``*.recordio``) in ``train_dir``, in natural
    name order, as one CSR matrix of word counts."""
    paths = sorted(
        (p for p in Path(train_dir).iterdir()
         if p.is_file() and p.suffix in (".pbr", ".rec", ".recordio")),
        key=lambda p: shards.shard_sort_key(p.name),
    )
    if not paths:
        raise FileNotFoundError(f"no RecordIO shards (*.pbr) in {train_dir}")
    return shards.read_sparse_shards(paths, n_cols=feature_dim)


def train_ntm(
    train_dir: Path | str,
    vocab_path: Path | str | None,
    num_topics: int,
    out_dir: Path | str | None,
    seed: int = 0,
    *,
    algorithm: str = "nmf",
    max_iter: int | None = None,
) -> NtmModel:
    """Fit the NTM stand-in on the RecordIO word counts in ``train_dir``; write the model
    directory and its ``model.tar.gz`` to ``out_dir`` (when given)."""
    vocab = None
    if vocab_path is not None:
        vocab = Path(vocab_path).read_text(encoding="utf-8").splitlines()
    X = read_counts(train_dir, len(vocab) if vocab else None)
    model = topics.fit(X, num_topics, algorithm=algorithm, seed=seed, max_iter=max_iter)
    if out_dir is not None:
        model.save(Path(out_dir), vocab)
        write_tarball(Path(out_dir))
    return model


def ntm_infer(model: NtmModel | Path | str, X_counts: Any) -> np.ndarray:
    """Topic weights (n, K) float32 (rows sum to 1) for word counts (n, feature_dim)."""
    if not isinstance(model, NtmModel):
        model = NtmModel.load(model)
    return topics.infer(model, X_counts)


def train_knn(
    topic_vectors: Any,
    labels: Any,
    k: int,
    index_metric: str = "L2",
    out_dir: Path | str | None = None,
    *,
    predictor_type: str = "classifier",
    sample_size: int | None = None,
    seed: int = 0,
) -> KnnIndex:
    """Build the k-NN stand-in index (labels stored as float32); write it to ``out_dir`` with
    ``model.tar.gz`` when given."""
    index = knn.build(topic_vectors, labels, k, index_metric, predictor_type, sample_size, seed)
    if out_dir is not None:
        index.save(Path(out_dir))
        write_tarball(Path(out_dir))
    return index


def knn_query(
    index: KnnIndex | Path | str, M: Any, k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(predicted_label (n,), labels (n, k), distances (n, k) ascending)``: L2 distances, or
    for COSINE / INNER_PRODUCT similarities (nearest last), as standins/knn.py documents."""
    if not isinstance(index, KnnIndex):
        index = KnnIndex.load(index)
    return knn.query(index, M, k)


# --- CLI -----------------------------------------------------------------------------------


def _ntm_paths(args: argparse.Namespace) -> tuple[Path, Path | None, dict[str, Any]]:
    if args.ntm_data:
        base = Path(args.ntm_data)
        info_path = base / "ntm_data.json"
        info = jsondoc.loads(info_path.read_bytes(), str(info_path)) if info_path.exists() else {}
        vocab = base / "auxiliary" / "vocab.txt"
        return base / "train", vocab if vocab.exists() else None, info
    if not args.train_dir:
        raise SystemExit("give --ntm-data DIR or --train-dir DIR [--vocab FILE]")
    return Path(args.train_dir), Path(args.vocab) if args.vocab else None, {}


def run_ntm(args: argparse.Namespace, out: Path) -> tuple[NtmModel, np.ndarray, dict]:
    train_dir, vocab, info = _ntm_paths(args)
    num_topics = args.num_topics or int(info.get("num_topics", 50))
    t0 = time.perf_counter()
    model = train_ntm(
        train_dir,
        vocab,
        num_topics,
        out,
        args.seed,
        algorithm=args.algorithm,
        max_iter=args.max_iter,
    )
    t1 = time.perf_counter()
    vectors = ntm_infer(model, read_counts(train_dir, model.feature_dim))
    timings = {"ntm_fit_s": round(t1 - t0, 2), "ntm_infer_s": round(time.perf_counter() - t1, 2)}
    return model, vectors, timings


def _needed(unit: np.ndarray, catalog_path: Path) -> dict[str, int]:
    """Percentiles of how many neighbours the training documents need for 10 distinct threads
    (scripts/knn_data.neighbours_needed): what k-NN's fixed ``k`` must cover."""
    from scripts.knn_data import neighbours_needed
    from serving.catalog import Catalog

    threads = neighbours.thread_ids(Catalog.load(catalog_path).titles)
    if len(threads) != unit.shape[0]:
        return {}
    need = neighbours_needed(unit, threads)
    return {f"p{q}": int(np.percentile(need, q)) for q in (50, 90, 99, 100)}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m standins.train",
        description=__doc__,
    )
    parser.add_argument("command", choices=("all", "ntm", "knn"))
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--ntm-data", help="serving.train's <output-data-dir>/ntm")
    parser.add_argument("--train-dir", help="folder of RecordIO word-count shards")
    parser.add_argument("--vocab", help="vocab.txt (one word per line, feature order)")
    parser.add_argument("--num-topics", type=int,
                        help="default: ntm_data.json's, else 50 (serving.train's default)")
    parser.add_argument("--algorithm", choices=topics.ALGORITHMS, default="nmf")
    parser.add_argument("--max-iter", type=int, help="fitting iterations (NMF) or passes (LDA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topic-vectors", help="ntm: also write them here; knn: read them")
    parser.add_argument("--labels", help="knn: labels .npy (default: row indices)")
    parser.add_argument("--k", type=int, default=50, help="50: see docs/pipeline.md (threads)")
    parser.add_argument("--index-metric", default="L2", choices=knn.METRICS)
    parser.add_argument("--predictor-type", default="classifier", choices=knn.PREDICTOR_TYPES)
    parser.add_argument("--sample-size", type=int, help="default: every training document")
    args = parser.parse_args(argv)
    out = Path(args.out)
    started = time.perf_counter()
    summary: dict[str, Any] = {"command": args.command}
    if args.command in ("all", "ntm"):
        model, vectors, timings = run_ntm(args, out / "ntm" if args.command == "all" else out)
        summary.update(
            timings,
            algorithm=model.algorithm,
            num_topics=model.num_topics,
            feature_dim=model.feature_dim,
            documents=int(vectors.shape[0]),
        )
        vectors_path = out / "topic_vectors.npy" if args.command == "all" else args.topic_vectors
        if vectors_path:
            np.save(vectors_path, vectors, allow_pickle=False)
    else:
        if not args.topic_vectors:
            raise SystemExit("knn needs --topic-vectors FILE.npy")
        vectors = np.load(args.topic_vectors, allow_pickle=False)
    if args.command in ("all", "knn"):
        labels = (
            np.load(args.labels, allow_pickle=False) if args.labels else np.arange(vectors.shape[0])
        )
        unit, zero = neighbours.unit_rows(vectors)
        if zero.any():
            raise SystemExit(f"topic vector {int(np.flatnonzero(zero)[0])} is all zero")
        t0 = time.perf_counter()
        index = train_knn(
            unit,
            labels,
            args.k,
            args.index_metric,
            out / "knn" if args.command == "all" else out,
            predictor_type=args.predictor_type,
            sample_size=args.sample_size,
            seed=args.seed,
        )
        summary.update(knn_build_s=round(time.perf_counter() - t0, 2), knn=index.hyperparameters())
        catalog = Path(args.ntm_data or "") / "catalog.jsonl"
        if args.ntm_data and catalog.exists() and not args.labels:
            summary["neighbours_for_10_threads"] = _needed(unit, catalog)
    summary["total_s"] = round(time.perf_counter() - started, 2)
    if args.command == "all":
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
