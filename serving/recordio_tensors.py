"""Reading RecordIO-protobuf tensors back (see ``serving.recordio``, which re-exports this):
one tensor of a record, rows of tensors as arrays or CSR matrices, with every declared shape,
key and count checked before anything is expanded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import DTypeLike

from serving import record_pb2
from serving.errors import PayloadTooLarge, UnprocessableEntity
from serving.recordio_frames import Source, read_records

MAX_WIDTH = 2**31 - 1  # widest vector a sparse tensor's shape may declare
MAX_DENSE = 2**24  # most elements a sparse tensor may be expanded to by decode_tensor_rows
_DTYPE = {"float32_tensor": np.float32, "float64_tensor": np.float64, "int32_tensor": np.int32}


def record_tensor(
    record: record_pb2.Record, where: str, key: str, index: int = 1
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(values, keys, shape)`` of ``record.<where>[key]``; UnprocessableEntity if absent.

    ``index`` (counted from 1) only names the record in error messages.
    """
    if where not in ("features", "label"):
        raise ValueError(f"where must be 'features' or 'label', not {where!r}")
    mapping = getattr(record, where)
    if key not in mapping:

        def names(m: Mapping[str, object]) -> str:
            return ", ".join(repr(k[:40]) for k in list(m)[:5]) or "none"

        raise UnprocessableEntity(
            f"RecordIO record {index} has no {where}[{key!r}] tensor "
            f"(features: {names(record.features)}; label: {names(record.label)})"
        )
    value = mapping[key]
    kind = value.WhichOneof("value")
    if kind not in _DTYPE:
        raise UnprocessableEntity(
            f"RecordIO record {index}: {where}[{key!r}] holds {kind or 'nothing'}, "
            "not a Float32/Float64/Int32 tensor"
        )
    tensor = getattr(value, kind)
    values = np.array(tensor.values, dtype=_DTYPE[kind])
    keys = np.array(tensor.keys, dtype=np.uint64)
    return values, keys, tuple(tensor.shape)


def _checked(
    record: record_pb2.Record, where: str, key: str, index: int, n_cols: int | None
) -> tuple[np.ndarray, np.ndarray | None, int, tuple[int, ...]]:
    """(values, int64 keys or None if dense, width, shape) of one record's tensor, validated.

    A tensor is sparse if it has keys, or no values but a non-empty shape (an all-zero row).
    A sparse tensor without shape takes its width from ``n_cols``.
    """
    values, keys, shape = record_tensor(record, where, key, index)
    size = math.prod(shape) if shape else None
    name = f"RecordIO record {index}: {where}[{key!r}]"
    if not (keys.size or (values.size == 0 and size)):
        if size is not None and size != values.size:
            raise UnprocessableEntity(f"{name}: {values.size} values, shape {list(shape)}")
        return values, None, values.size, shape
    width = size if size is not None else n_cols
    if width is None:
        raise UnprocessableEntity(f"{name} is sparse but has no shape")
    if width > MAX_WIDTH:
        raise UnprocessableEntity(f"{name} shape {list(shape)} is too wide")
    if keys.size != values.size:
        raise UnprocessableEntity(f"{name} has {keys.size} keys, {values.size} values")
    if keys.size and int(keys.max()) >= width:
        raise UnprocessableEntity(f"{name} has a key outside 0..{width - 1}")
    return values, keys.astype(np.int64), width, shape


def check_record_count(index: int, max_records: int | None) -> None:
    """PayloadTooLarge as soon as record ``index`` is one more than ``max_records``."""
    if max_records is not None and index > max_records:
        raise PayloadTooLarge(f"the request has more than {max_records} records; send fewer "
                              "records per request")


def decode_tensor_rows(
    data: Source, where: str, key: str, width: int | None = None, max_values: int = MAX_DENSE,
    max_records: int | None = None,
) -> list[np.ndarray]:
    """Every record's ``where[key]`` tensor as a dense array (sparse ones expanded by shape).

    A tensor's declared size is checked against ``width`` (when given) and the running total
    against ``max_values`` before anything is allocated: a sparse tensor of a few bytes may
    declare millions of elements.  Reading stops at record ``max_records + 1`` (413).
    """
    out = []
    total = 0
    for index, record in enumerate(read_records(data), start=1):
        check_record_count(index, max_records)
        values, keys, size, shape = _checked(record, where, key, index, None)
        if width is not None and size != width:
            raise UnprocessableEntity(
                f"RecordIO record {index}: {where}[{key!r}] has {size} values; expected {width}")
        total += size
        if total > max_values:
            raise PayloadTooLarge(
                f"the RecordIO records expand to more than {max_values} values (at record "
                f"{index}); send fewer records per request")
        if keys is not None:
            dense = np.zeros(size, dtype=values.dtype)
            dense[keys] = values
            values = dense
        out.append(values.reshape(shape) if len(shape) > 1 else values)
    return out


def csr_from_rows(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None]], n_cols: int, dtype: DTypeLike = None
) -> sp.csr_matrix:
    """CSR from (values, column indices) rows; indices None = a dense row. Duplicates are summed."""
    idx = [np.flatnonzero(v) if k is None else k for v, k in rows]
    vals = [v[i] if k is None else v for (v, k), i in zip(rows, idx, strict=True)]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(i) for i in idx], out=indptr[1:])
    # int32 indices when they fit: scipy would otherwise scan int64 ones to downcast them.
    index_type = np.int32 if max(n_cols, indptr[-1]) <= MAX_WIDTH else np.int64
    dtype = dtype or (np.result_type(*vals) if vals else np.float32)
    data = np.concatenate(vals).astype(dtype) if vals else np.zeros(0, dtype)
    indices = np.concatenate(idx).astype(index_type) if idx else np.zeros(0, index_type)
    indptr = indptr.astype(index_type)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols))
    matrix.sum_duplicates()
    return matrix


def matrix_from_records(
    records: Iterable[record_pb2.Record],
    where: str = "features",
    key: str = "values",
    n_cols: int | None = None,
    force_sparse: bool = False,
) -> sp.csr_matrix | np.ndarray:
    """Stack one vector per record: a dense 2-D array, or CSR if any row is sparse (or forced)."""
    rows: list[tuple[np.ndarray, np.ndarray | None]] = []
    width, any_sparse = n_cols, force_sparse
    for index, record in enumerate(records, start=1):
        values, keys, row_width, shape = _checked(record, where, key, index, width)
        name = f"RecordIO record {index}: {where}[{key!r}]"
        if len(shape) > 1:
            raise UnprocessableEntity(f"{name} has shape {list(shape)}; expected a vector")
        width = row_width if width is None else width
        if row_width != width:
            raise UnprocessableEntity(f"{name} has {row_width} columns; expected {width}")
        any_sparse = any_sparse or keys is not None
        rows.append((values, keys))
    dtype = np.result_type(*(v.dtype for v, _ in rows)) if rows else np.dtype(np.float32)
    if any_sparse:
        return csr_from_rows(rows, width or 0, dtype)
    if not rows:
        return np.zeros((0, width or 0), dtype=dtype)
    return np.vstack([v for v, _ in rows]).astype(dtype, copy=False)


def decode_matrix(
    data: Source, where: str = "features", key: str = "values", n_cols: int | None = None
) -> sp.csr_matrix | np.ndarray:
    """Rows of ``where[key]`` from RecordIO: CSR if any record is sparse, else a dense array.

    Float32/Float64/Int32 tensors are accepted (the result dtype is their common type).  With
    ``n_cols`` every row must have that width; otherwise all rows must agree with the first.
    """
    return matrix_from_records(read_records(data), where, key, n_cols)
