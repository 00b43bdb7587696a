"""RecordIO-protobuf: the framing and tensor layout of SageMaker's built-in algorithms.

Each record is framed as uint32 magic 0xCED7230A, uint32 length (little-endian; the top 3 bits are
a continuation flag, always 0 here), the serialized ``aialgs.data.Record``, then zero padding to a
multiple of 4 bytes.  A vector lives under key ``"values"``; an empty ``keys`` means dense, a
sparse vector sets ``keys`` and ``shape=[dim]``.

``record_pb2.py`` is generated; after editing ``record.proto`` regenerate it from the repository
root with::

    python -m grpc_tools.protoc -I. --python_out=. serving/record.proto
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import DTypeLike

from serving import record_pb2
from serving.errors import BadRequest, PayloadTooLarge, UnprocessableEntity

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_FLAG_MASK = 0xE000_0000
_LENGTH_MASK = 0x1FFF_FFFF
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by payload length % 4
_CHUNK_ROWS = 4096
MAX_WIDTH = 2**31 - 1  # widest vector a sparse tensor's shape may declare
MAX_DENSE = 2**24  # most elements a sparse tensor may be expanded to by decode_tensor_rows

TensorType = Literal["float32", "float64", "int32"]
_FIELD = {"float32": "float32_tensor", "float64": "float64_tensor", "int32": "int32_tensor"}
_DTYPE = {"float32_tensor": np.float32, "float64_tensor": np.float64, "int32_tensor": np.int32}
Source = bytes | bytearray | memoryview | BinaryIO


class RecordIOError(BadRequest):
    """Bytes that are not a valid RecordIO-protobuf stream."""


# --- framing -----------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """One framed record: header, payload, zero padding."""
    if len(payload) > _LENGTH_MASK:
        raise ValueError(f"record of {len(payload)} bytes is too long for RecordIO")
    return _HEADER.pack(MAGIC, len(payload)) + payload + _PAD[len(payload) % 4]


def encode_records(records: Iterable[record_pb2.Record]) -> bytes:
    return b"".join(frame(r.SerializeToString()) for r in records)


def write_records(fp: BinaryIO, records: Iterable[record_pb2.Record]) -> int:
    """Write framed records to a binary file; returns the number of records written."""
    count = 0
    for record in records:
        fp.write(frame(record.SerializeToString()))
        count += 1
    return count


def _check_header(magic: int, word: int, index: int, offset: int) -> int:
    if magic != MAGIC:
        raise RecordIOError(
            f"RecordIO record {index} at byte {offset}: bad magic 0x{magic:08X} "
            f"(expected 0x{MAGIC:08X}); the body is not RecordIO-protobuf"
        )
    if word & _FLAG_MASK:
        raise RecordIOError(
            f"RecordIO record {index} at byte {offset}: continuation flag {word >> 29} is set; "
            "multi-part records are not supported"
        )
    return word & _LENGTH_MASK


def _read_exact(fp: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = fp.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _iter_stream(fp: BinaryIO) -> Iterator[bytes]:
    index, offset = 1, 0
    while True:
        header = _read_exact(fp, _HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: truncated header")
        length = _check_header(*_HEADER.unpack(header), index, offset)
        body = _read_exact(fp, length + (-length % 4))
        if len(body) < length + (-length % 4):
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: truncated record")
        if any(body[length:]):
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: non-zero padding")
        yield body[:length]
        index, offset = index + 1, offset + _HEADER.size + len(body)


def iter_payloads(source: Source) -> Iterator[bytes]:
    """The raw record payloads of a RecordIO byte string or binary file, streamed."""
    if isinstance(source, bytes | bytearray | memoryview):
        return _iter_stream(io.BytesIO(source))
    return _iter_stream(source)


def count_records(source: Source) -> int:
    """Number of records in a RecordIO byte string or file (framing checked, not parsed)."""
    return sum(1 for _ in iter_payloads(source))


def read_records(source: Source) -> Iterator[record_pb2.Record]:
    """Parse every record of a RecordIO-protobuf byte string or binary file, streamed."""
    for index, payload in enumerate(iter_payloads(source), start=1):
        record = record_pb2.Record()
        try:
            record.ParseFromString(payload)
        except Exception:  # DecodeError, or invalid UTF-8 in a string field
            raise RecordIOError(
                f"RecordIO record {index} is not a valid aialgs.data.Record protobuf"
            ) from None
        yield record


# --- building records --------------------------------------------------------------------------


def _fill(value: record_pb2.Value, values: list, tensor_type: TensorType, **extra: list) -> None:
    tensor = getattr(value, _FIELD[tensor_type])
    tensor.SetInParent()  # an empty vector must still select the oneof
    tensor.values.extend(values)
    for name, items in extra.items():
        getattr(tensor, name).extend(items)


def make_record(
    features: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    label: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    tensor_type: TensorType = "float32",
) -> record_pb2.Record:
    """One record from vectors (any shape is flattened), e.g. a k-NN answer with ragged rows."""
    record = record_pb2.Record()
    for where, mapping in (("features", features or {}), ("label", label or {})):
        for key, vector in mapping.items():
            flat = np.asarray(vector, dtype=np.dtype(tensor_type)).ravel().tolist()
            _fill(getattr(record, where)[key], flat, tensor_type)
    return record


def _rows(array: np.ndarray, n_rows: int, tensor_type: TensorType) -> list:
    arr = np.asarray(array, dtype=np.dtype(tensor_type))
    if arr.shape[:1] != (n_rows,):
        raise ValueError(f"array of shape {arr.shape} does not have {n_rows} rows")
    return arr.reshape(n_rows, -1).tolist() if n_rows else []


def iter_dense_records(
    n_rows: int,
    features: Mapping[str, np.ndarray] | None = None,
    label: Mapping[str, np.ndarray] | None = None,
    tensor_type: TensorType = "float32",
) -> Iterator[record_pb2.Record]:
    """One record per row: row i of every array goes to ``features[key]`` / ``label[key]``.

    An array of shape (n,) gives each record a one-element tensor (e.g. k-NN's predicted_label).
    """
    cols = [
        (where, key, _rows(arr, n_rows, tensor_type))
        for where, mapping in (("features", features or {}), ("label", label or {}))
        for key, arr in mapping.items()
    ]
    for i in range(n_rows):
        record = record_pb2.Record()
        for where, key, rows in cols:
            _fill(getattr(record, where)[key], rows[i], tensor_type)
        yield record


def encode_tensor_rows(
    n_rows: int,
    features: Mapping[str, np.ndarray] | None = None,
    label: Mapping[str, np.ndarray] | None = None,
    tensor_type: TensorType = "float32",
) -> bytes:
    """RecordIO bytes of :func:`iter_dense_records` (NTM output: ``label={"topic_weights": W}``)."""
    return encode_records(iter_dense_records(n_rows, features, label, tensor_type))


def encode_dense_rows(
    X: np.ndarray,
    label: np.ndarray | None = None,
    key: str = "values",
    where: Literal["features", "label"] = "features",
    tensor_type: TensorType = "float32",
) -> bytes:
    """Dense rows of X under ``where[key]``; optional per-row ``label["values"]``."""
    X = np.asarray(X)
    if where not in ("features", "label"):
        raise ValueError(f"where must be 'features' or 'label', not {where!r}")
    if where == "label" and key == "values" and label is not None:
        raise ValueError("label['values'] would hold both X and label")
    labels = {} if label is None else {"values": label}
    if where == "features":
        return encode_tensor_rows(len(X), {key: X}, labels, tensor_type)
    return encode_tensor_rows(len(X), None, {key: X, **labels}, tensor_type)


def iter_sparse_records(
    X: sp.csr_matrix | sp.csr_array, label: np.ndarray | None = None
) -> Iterator[record_pb2.Record]:
    """One sparse float32 record per row (``keys``, ``values``, ``shape=[n_cols]``), streamed."""
    X = sp.csr_matrix(X)
    n_rows, n_cols = X.shape
    labels = None if label is None else _rows(label, n_rows, "float32")
    for start in range(0, n_rows, _CHUNK_ROWS):
        part = X[start : start + _CHUNK_ROWS]
        data = part.data.astype(np.float32).tolist()
        keys = part.indices.tolist()
        ptr = part.indptr.tolist()
        for i in range(part.shape[0]):
            a, b = ptr[i], ptr[i + 1]
            record = record_pb2.Record()
            _fill(record.features["values"], data[a:b], "float32", keys=keys[a:b], shape=[n_cols])
            if labels is not None:
                _fill(record.label["values"], labels[start + i], "float32")
            yield record


def encode_sparse_rows(X: sp.csr_matrix | sp.csr_array, label: np.ndarray | None = None) -> bytes:
    return encode_records(iter_sparse_records(X, label))


# --- decoding ----------------------------------------------------------------------------------


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
