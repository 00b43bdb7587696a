"""The NTM training data on disk: a sparse matrix as ``{prefix}_part{i}.pbr`` RecordIO shards.

Rows are split into contiguous blocks in part order, so record *i* of the shards taken in
natural name order (:func:`shard_sort_key`) is training document (catalog index) *i*: the
label k-NN is trained with.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from serving import record_pb2
from serving.recordio import iter_sparse_records, matrix_from_records, read_records, write_records


def shard_sort_key(name: str) -> list[object]:
    """Natural order of shard names: ``train_part2`` before ``train_part10``. Record *i* of
    the shards concatenated in this order is training document (catalog index) *i*."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def write_sparse_shards(
    X: sp.csr_matrix | sp.csr_array,
    out_dir: Path,
    n_parts: int,
    prefix: str = "train",
    label: np.ndarray | None = None,
) -> list[Path]:
    """Write X as ``{prefix}_part{i}.pbr``, i < n_parts, contiguous row blocks (sizes differ <= 1).

    Each file is streamed record by record and appears atomically (written to ``.tmp``, renamed).
    """
    X = sp.csr_matrix(X)
    n_rows = X.shape[0]
    if not 1 <= n_parts <= max(n_rows, 1) or n_rows == 0:
        raise ValueError(f"cannot split {n_rows} rows into {n_parts} non-empty parts")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, n_rows, n_parts + 1).round().astype(int).tolist()
    paths = []
    for i in range(n_parts):
        a, b = bounds[i], bounds[i + 1]
        path = out_dir / f"{prefix}_part{i}.pbr"
        tmp = path.with_name(path.name + ".tmp")
        part_label = None if label is None else np.asarray(label)[a:b]
        with open(tmp, "wb") as fp:
            write_records(fp, iter_sparse_records(X[a:b], part_label))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def read_sparse_shards(paths: Sequence[Path], n_cols: int | None = None) -> sp.csr_matrix:
    """Stream ``features["values"]`` of every record in the files, in order, into one CSR matrix."""

    def records() -> Iterator[record_pb2.Record]:
        for path in paths:
            with open(path, "rb") as fp:
                yield from read_records(fp)

    result = matrix_from_records(records(), n_cols=n_cols, force_sparse=True)
    assert isinstance(result, sp.csr_matrix)
    return result
