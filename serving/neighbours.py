"""What k-NN's neighbours mean: unit topic vectors, the metric's order, the score, threads.

Both sides of the built-in k-NN see L2-normalised topic vectors (``unit_rows``): the k-NN
training data (``scripts/knn_data.py``, the stand-ins' ``standins/train.py``) and every vector
``topics-to-knn`` sends. For unit vectors u, v with cosine similarity c:

    Euclidean distance  d  = |u - v| = sqrt(2 - 2c)   ->  c = 1 - d**2 / 2
    squared distance    d2 = 2 - 2c                   ->  c = 1 - d2 / 2
    inner product       p  = c

so every metric gives the same neighbours and ``score`` is always the cosine similarity of the
topic vectors (1 = the same topics). How each ``index_metric`` answers (AWS DG
``kNN_hyperparameters``: "L2 for Euclidean-distance, INNER_PRODUCT for inner-product distance,
COSINE for cosine similarity"; ``kNN-inference-formats``: verbose "distances" sorted "from
smallest to largest"):

- ``L2`` (the default, and what we train): smaller = nearer, so ascending is nearest first under
  any reading. Euclidean (``distance=euclidean``, what the DG's words say) or squared (FAISS'
  ``IndexFlatL2`` returns squared distances; ``distance=squared``) is UNCONFIRMED: the order is
  the same, only the score differs, and the deploy-time self-check (scripts/selfcheck.py)
  compares scores with the training vectors to tell which.
- ``COSINE`` / ``INNER_PRODUCT``: larger = nearer; the values are similarities listed ascending,
  so the nearest comes LAST (AWS's tutorial "Build a semantic content recommendation system"
  reverses the list). ``recommend`` sorts by the metric it is told, never by the list position.

Values outside what the metric allows for unit vectors are refused (``NeighbourError``): they
mean k-NN was trained on other vectors, or with another metric than the one configured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("L2", "COSINE", "INNER_PRODUCT")
DISTANCES = ("euclidean", "squared")
TOLERANCE = 1e-3  # float32 rounding of unit vectors, with room
_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|antw)\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*:\s*)+", re.I)
_SPACE = re.compile(r"\s+")


class NeighbourError(ValueError):
    """k-NN's answer cannot come from unit vectors under the configured metric."""


def unit_rows(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows scaled to length 1 as float32, mask of rows that were all zero and stay zero)."""
    M = np.asarray(M, dtype=np.float64)
    norms = np.linalg.norm(M, axis=1)
    zero = norms == 0
    unit = M / np.where(zero, 1.0, norms)[:, None]
    return unit.astype(np.float32), zero


def thread_key(title: str) -> str:
    """A subject without Re:/Fwd:/Fw:/AW:/SV: prefixes (also Re[2]:, Re^2:), case and extra
    whitespace: ``"Re: RE:  Space  Shuttle"`` and ``"space shuttle"`` are one thread."""
    return _SPACE.sub(" ", _PREFIX.sub("", title or "")).strip().casefold()


def thread_ids(titles: Sequence[str]) -> np.ndarray:
    """One integer per document, equal for documents of the same thread; a document without a
    subject is a thread of its own."""
    seen: dict[str, int] = {}
    out = np.empty(len(titles), dtype=np.int64)
    for index, title in enumerate(titles):
        key = thread_key(title)
        out[index] = seen.setdefault(key, len(seen)) if key else -1 - index
    return out


def distinct(threads: np.ndarray, labels: np.ndarray, want: int) -> np.ndarray:
    """Positions (into ``labels``, already nearest first) of the first ``want`` labels whose
    thread has not been seen before: one recommendation per thread."""
    _, first = np.unique(threads[labels], return_index=True)
    return np.sort(first)[:want]


@dataclass(frozen=True)
class Ranking:
    """How to order k-NN's values nearest first and turn them into cosine similarities."""

    metric: str = "L2"
    distance: str = "euclidean"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"k-NN metric {self.metric!r}; expected one of {', '.join(METRICS)}")
        if self.distance not in DISTANCES:
            raise ValueError(f"L2 distance {self.distance!r}; expected one of "
                             f"{', '.join(DISTANCES)}")

    @property
    def bounds(self) -> tuple[float, float]:
        if self.metric == "L2":
            return (0.0, 2.0) if self.distance == "euclidean" else (0.0, 4.0)
        return (-1.0, 1.0)

    def scores(self, values: np.ndarray) -> np.ndarray:
        """Cosine similarity of the unit topic vectors, from k-NN's values."""
        v = np.asarray(values, dtype=np.float64)
        if self.metric == "L2":
            squared = v * v if self.distance == "euclidean" else v
            return 1.0 - squared / 2.0
        return v

    def rank(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions nearest first, their scores); ties keep k-NN's order."""
        v = np.asarray(values, dtype=np.float64)
        low, high = self.bounds
        if v.size and not (np.isfinite(v).all() and v.min() >= low - TOLERANCE
                           and v.max() <= high + TOLERANCE):
            bad = v[~(np.isfinite(v) & (v >= low - TOLERANCE) & (v <= high + TOLERANCE))][0]
            raise NeighbourError(
                f"k-NN value {bad:.6g} is outside {low:g}..{high:g}, impossible for unit "
                f"vectors under index_metric {self.metric}"
                + (f" ({self.distance} distance)" if self.metric == "L2" else "")
                + ": was k-NN trained on this pipeline's unit topic vectors, with this metric?")
        scores = self.scores(v)
        order = np.argsort(-scores, kind="stable")
        return order, np.clip(scores[order], -1.0, 1.0)
