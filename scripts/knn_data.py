"""Turning NTM's topic vectors for the training documents into k-NN training data.

Document index = position in the training data: the RecordIO parts in natural order
(train_part0, train_part1, ..., train_part10), records in file order. That index is the k-NN label,
so a neighbour's label is the row of the document it stands for.

The vectors are written L2-normalised (serving/neighbours.py): ``topics-to-knn`` sends unit
vectors too, so under index_metric L2 a distance says exactly how similar two topic mixtures are.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from serving import jsondoc, neighbours, recordio, shards
from serving.data import DataError

natural_key = shards.shard_sort_key  # train_part2 sorts before train_part10


def count_records(data: bytes) -> int:
    """Records in a RecordIO file (the framing is checked)."""
    try:
        return recordio.count_records(data)
    except recordio.RecordIOError as exc:
        raise DataError(str(exc)) from exc


def topic_vectors(text: str) -> list[list[float]]:
    """NTM's batch output: JSON Lines of {"topic_weights": [...]}, or {"predictions": [...]}."""
    vectors: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = jsondoc.loads(line, f"line {number} of the NTM output")
        except jsondoc.JSONError as exc:
            raise DataError(exc.message) from None
        rows = item.get("predictions", [item]) if isinstance(item, dict) else None
        if rows is None:
            raise DataError(f"line {number} of the NTM output is not a JSON object")
        for row in rows:
            weights = row.get("topic_weights") if isinstance(row, dict) else None
            if not isinstance(weights, list) or not weights:
                raise DataError(f"line {number}: no topic_weights")
            vectors.append([float(w) for w in weights])
    return vectors


def knn_csv(vectors: Iterable[list[float]], first_index: int = 0) -> tuple[str, int]:
    """CSV rows 'label,u1,...,uK' (label first: text/csv; label_size=1) of the unit vectors;
    returns (text, dim)."""
    rows = list(vectors)
    dim = len(rows[0]) if rows else 0
    for offset, vector in enumerate(rows):
        if len(vector) != dim:
            raise DataError(f"document {first_index + offset} has {len(vector)} topics, not {dim}")
    if not rows:
        return "", 0
    unit, zero = neighbours.unit_rows(np.asarray(rows, dtype=np.float64))
    if zero.any():
        raise DataError(f"document {first_index + int(np.flatnonzero(zero)[0])}: all topic "
                        "weights are zero (an empty document in NTM's training data?)")
    lines = [",".join([str(first_index + offset), *(f"{w:.7g}" for w in u)])
             for offset, u in enumerate(unit.tolist())]
    return "".join(line + "\n" for line in lines), dim


def neighbours_needed(unit: np.ndarray, threads: np.ndarray, want: int = 10,
                      chunk: int = 512) -> np.ndarray:
    """For each document as its own query: how many nearest neighbours (itself included, exact
    cosine ranking of the unit vectors, as L2 ranks them) it takes to see ``want`` distinct
    threads; the whole catalog's size when it never does. Chooses k-NN's ``k``."""
    V = np.asarray(unit, dtype=np.float32)
    n = V.shape[0]
    top = min(n, max(8 * want, 256))
    out = np.full(n, n, dtype=np.int64)
    for start in range(0, n, chunk):
        sims = V[start:start + chunk] @ V.T
        head = np.argpartition(-sims, top - 1, axis=1)[:, :top]
        for row, cand in enumerate(head):
            ranked = cand[np.argsort(-sims[row, cand], kind="stable")]
            if len(np.unique(threads[ranked])) < want:  # rare: rank the whole catalog
                ranked = np.argsort(-sims[row], kind="stable")
            _, first = np.unique(threads[ranked], return_index=True)
            if len(first) >= want:
                out[start + row] = int(np.sort(first)[want - 1]) + 1
    return out
