"""The k-NN stand-in's index (not AWS code): exact nearest neighbours in numpy.

Hyper-parameters as the built-in's (contract §5): ``feature_dim``, ``k``, ``predictor_type``
(``classifier``: majority vote of the k labels, ties to the nearest; ``regressor``: their mean),
``sample_size`` (how many training points the index keeps: a seeded sample when fewer than
given) and ``index_metric``:

- ``L2`` (the built-in's default): Euclidean distance ("L2 for Euclidean-distance"), ascending,
  so the nearest comes first.
- ``COSINE``: the k most similar, reported as cosine SIMILARITIES ("COSINE for cosine
  similarity") sorted "from smallest to largest" as the inference-format page says of verbose
  distances: the nearest comes LAST. AWS's tutorial "Build a semantic content recommendation
  system" (aws.amazon.com/tutorials/semantic-content-recommendation-system-amazon-sagemaker,
  module four) trains with COSINE and reverses the returned labels (``[::-1][:10]``) to get the
  closest first, which is what this reading predicts.
- ``INNER_PRODUCT``: the k largest inner products ("inner-product distance"), reported as they
  are and ascending: the nearest comes LAST too.

AWS DG pages: ``kNN_hyperparameters`` (index_metric) and ``kNN-inference-formats`` (verbose).
Whether the real L2 is squared (FAISS' ``IndexFlatL2`` returns squared distances) is UNCONFIRMED:
``STANDIN_KNN_L2=squared`` in the environment makes this stand-in answer squared distances.

Labels are stored as float32, as the built-in stores them (integers above 2**24 lose precision).
The index directory holds only JSON and ``.npy``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving import jsondoc
from standins import NOTICE

CONFIG = "standin.json"
METRICS = ("COSINE", "L2", "INNER_PRODUCT")
PREDICTOR_TYPES = ("classifier", "regressor")
QUERY_CHUNK = 1024


@dataclass
class KnnIndex:
    vectors: np.ndarray  # (n, d) float32; for COSINE, unit rows
    labels: np.ndarray  # (n,) float32
    k: int
    index_metric: str = "L2"
    predictor_type: str = "classifier"
    sample_size: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.vectors.shape[1])

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "k": self.k,
            "predictor_type": self.predictor_type,
            "sample_size": self.sample_size,
            "index_metric": self.index_metric,
        }

    def save(self, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        np.save(out_dir / "vectors.npy", self.vectors.astype(np.float32), allow_pickle=False)
        np.save(out_dir / "labels.npy", self.labels.astype(np.float32), allow_pickle=False)
        config = {
            "standin": "knn",
            "notice": NOTICE.format(algorithm="k-NN"),
            **self.hyperparameters(),
            "index_size": int(self.vectors.shape[0]),
            "files": ["vectors.npy", "labels.npy"],
            **self.meta,
        }
        (out_dir / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        return out_dir

    @classmethod
    def load(cls, model_dir: Path | str) -> KnnIndex:
        model_dir = Path(model_dir)
        config = jsondoc.loads((model_dir / CONFIG).read_bytes(), str(model_dir / CONFIG))
        if config.get("standin") != "knn":
            raise ValueError(f"{model_dir / CONFIG} is not a k-NN stand-in model")
        vectors = np.load(model_dir / "vectors.npy", allow_pickle=False)
        labels = np.load(model_dir / "labels.npy", allow_pickle=False)
        if vectors.ndim != 2 or vectors.shape != (labels.size, config["feature_dim"]):
            raise ValueError(
                f"{model_dir}: vectors {vectors.shape} and labels {labels.shape} "
                f"do not match feature_dim {config['feature_dim']}"
            )
        return cls(
            vectors.astype(np.float32),
            labels.astype(np.float32),
            int(config["k"]),
            config["index_metric"],
            config["predictor_type"],
            int(config["sample_size"]),
            meta=config,
        )


def _unit_rows(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return M / np.where(norms > 0, norms, 1.0)


def build(
    vectors: Any,
    labels: Any,
    k: int,
    index_metric: str = "L2",
    predictor_type: str = "classifier",
    sample_size: int | None = None,
    seed: int = 0,
) -> KnnIndex:
    """An index over ``vectors`` (n, d) with ``labels`` (n,), checked like the built-in's
    hyper-parameters."""
    V = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64).ravel()
    metric = index_metric.upper()
    if V.ndim != 2 or V.shape[0] != y.size or V.shape[0] == 0:
        raise ValueError(f"need (n, d) vectors and n labels, got {V.shape} and {y.shape}")
    if not (np.isfinite(V).all() and np.isfinite(y).all()):
        raise ValueError("vectors and labels must be finite")
    if metric not in METRICS or predictor_type not in PREDICTOR_TYPES:
        raise ValueError(
            f"index_metric must be one of {METRICS}, predictor_type one of {PREDICTOR_TYPES}"
        )
    n = V.shape[0]
    sample_size = n if sample_size is None else int(sample_size)
    if not 1 <= k <= min(1024, sample_size) or sample_size < 1:
        raise ValueError(
            f"need 1 <= k <= min(1024, sample_size), got k={k}, sample_size={sample_size}"
        )
    if sample_size < n:
        keep = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))
        V, y = V[keep], y[keep]
    stored = _unit_rows(V) if metric == "COSINE" else V
    return KnnIndex(
        stored.astype(np.float32), y.astype(np.float32), int(k), metric, predictor_type, sample_size
    )


def _scores(index: KnnIndex, Q: np.ndarray) -> np.ndarray:
    """Distances (smaller = nearer) from each query row to every indexed vector, float64."""
    V = index.vectors.astype(np.float64)
    if index.index_metric == "COSINE":
        return 1.0 - _unit_rows(Q) @ V.T
    if index.index_metric == "INNER_PRODUCT":
        return -(Q @ V.T)
    sq = (Q * Q).sum(axis=1)[:, None] - 2.0 * (Q @ V.T) + (V * V).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def _vote(labels: np.ndarray) -> float:
    """Most frequent label; a tie goes to the label whose nearest occurrence comes first."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    best = np.flatnonzero(counts == counts.max())
    return float(values[best[np.argmin(first[best])]])


def reported(index: KnnIndex, ranked: np.ndarray, squared_l2: bool = False) -> np.ndarray:
    """What the built-in reports for neighbours ranked nearest first by ``_scores``: L2
    distances (squared when asked), else similarities (``1 - ranked`` for COSINE, the inner
    product for INNER_PRODUCT)."""
    if index.index_metric == "L2":
        return ranked * ranked if squared_l2 else ranked
    return 1.0 - ranked if index.index_metric == "COSINE" else -ranked


def query(
    index: KnnIndex, M: Any, k: int | None = None, squared_l2: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(predicted_label (n,), labels (n, k), distances (n, k) ascending)`` for queries M (n, d).

    "distances" are what the built-in documents per metric (module docstring): ascending in
    every case, so for COSINE and INNER_PRODUCT the nearest neighbour is the LAST. Ties go to the
    lower index position, so answers are deterministic.
    """
    Q = np.asarray(M, dtype=np.float64)
    if Q.ndim != 2 or Q.shape[1] != index.feature_dim:
        raise ValueError(f"queries must be (n, {index.feature_dim}), got {Q.shape}")
    k = min(int(k or index.k), index.vectors.shape[0])
    n = Q.shape[0]
    labels = np.empty((n, k), dtype=np.float32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, QUERY_CHUNK):
        D = _scores(index, Q[start : start + QUERY_CHUNK])
        kth = np.partition(D, k - 1, axis=1)[:, k - 1]
        for row, d in enumerate(D):
            cand = np.flatnonzero(d <= kth[row])
            order = cand[np.lexsort((cand, d[cand]))][:k]
            labels[start + row] = index.labels[order]
            distances[start + row] = d[order]
    if index.predictor_type == "regressor":
        predicted = labels.astype(np.float64).mean(axis=1).astype(np.float32)
    else:
        predicted = np.array([_vote(row) for row in labels], dtype=np.float32)
    values = reported(index, distances.astype(np.float64), squared_l2).astype(np.float32)
    if index.index_metric != "L2":  # similarities, smallest to largest: nearest last
        labels, values = labels[:, ::-1].copy(), values[:, ::-1].copy()
    return predicted, labels, values
