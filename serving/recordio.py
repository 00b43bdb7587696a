"""RecordIO-protobuf: the framing and tensor layout of SageMaker's built-in algorithms.

Records are framed as ``serving.recordio_frames`` says, each payload a serialized
``aialgs.data.Record``; ``serving.recordio_tensors`` reads the tensors back; this module builds
them and re-exports both.  A vector lives under key ``"values"``; an empty ``keys`` means dense,
a sparse vector sets ``keys`` and ``shape=[dim]``.

``record_pb2.py`` is generated; after editing ``record.proto`` regenerate it from the repository
root with::

    python -m grpc_tools.protoc -I. --python_out=. serving/record.proto
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp

from serving import record_pb2
from serving.recordio_frames import (
    MAGIC,
    RecordIOError,
    Source,
    count_records,
    encode_records,
    frame,
    iter_payloads,
    read_records,
    write_records,
)
from serving.recordio_tensors import (
    MAX_DENSE,
    MAX_WIDTH,
    check_record_count,
    csr_from_rows,
    decode_matrix,
    decode_tensor_rows,
    matrix_from_records,
    record_tensor,
)

__all__ = [  # framing (recordio_frames), reading (recordio_tensors), building: one namespace
    "MAGIC", "MAX_DENSE", "MAX_WIDTH", "RecordIOError", "Source", "TensorType",
    "check_record_count", "count_records", "csr_from_rows", "decode_matrix",
    "decode_tensor_rows", "encode_dense_rows", "encode_records", "encode_sparse_rows",
    "encode_tensor_rows", "frame", "iter_dense_records", "iter_payloads", "iter_sparse_records",
    "make_record", "matrix_from_records", "read_records", "record_tensor", "write_records",
]

_CHUNK_ROWS = 4096
TensorType = Literal["float32", "float64", "int32"]
_FIELD = {"float32": "float32_tensor", "float64": "float64_tensor", "int32": "int32_tensor"}


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
