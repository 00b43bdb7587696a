"""Turning NTM's topic vectors for the training documents into k-NN training data.

Document index = position in the training data: the RecordIO parts in natural order
(train_part0, train_part1, ..., train_part10), records in file order. That index is the k-NN label,
so a neighbour's label is the row of the document it stands for.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable

RECORDIO_MAGIC = 0xCED7230A


class DataError(ValueError):
    pass


def natural_key(name: str) -> list[object]:
    """train_part2 sorts before train_part10."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def count_records(data: bytes) -> int:
    """Records in a RecordIO file: uint32 magic, uint32 length (low 29 bits), body, pad to 4."""
    count = pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise DataError(f"truncated RecordIO header at byte {pos}")
        magic, length = struct.unpack_from("<II", data, pos)
        if magic != RECORDIO_MAGIC:
            raise DataError(f"no RecordIO magic at byte {pos}")
        length &= (1 << 29) - 1
        pos += 8 + length + (-length % 4)
        if pos > len(data):
            raise DataError("truncated RecordIO record")
        count += 1
    return count


def topic_vectors(text: str) -> list[list[float]]:
    """NTM's batch output: JSON Lines of {"topic_weights": [...]}, or {"predictions": [...]}."""
    vectors: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise DataError(f"line {number} of the NTM output is not JSON") from None
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
