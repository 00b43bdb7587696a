"""Turning NTM's topic vectors for the training documents into k-NN training data.

Document index = position in the training data: the RecordIO parts in natural order
(train_part0, train_part1, ..., train_part10), records in file order. That index is the k-NN label,
so a neighbour's label is the row of the document it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable

from serving import jsondoc, recordio, shards


class DataError(ValueError):
    pass


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
    """CSV rows 'label,w1,...,wK' (label first: text/csv; label_size=1); returns (text, dim)."""
    lines: list[str] = []
    dim = 0
    for offset, vector in enumerate(vectors):
        dim = dim or len(vector)
        if len(vector) != dim:
            raise DataError(f"document {first_index + offset} has {len(vector)} topics, not {dim}")
        lines.append(",".join([str(first_index + offset), *(f"{w:.7g}" for w in vector)]))
    return "".join(line + "\n" for line in lines), dim
