"""RecordIO-protobuf framing and tensors: exact bytes, round trips, refusals, speed."""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving import record_pb2, recordio
from serving.errors import BadRequest, PayloadTooLarge, ServingError, UnprocessableEntity
from serving.recordio import RecordIOError

REPO = Path(__file__).resolve().parents[1]


def sdk_v2_write(payloads: list[bytes]) -> bytes:
    """The framing of sagemaker-python-sdk v2 ``sagemaker.amazon.common._write_recordio``."""
    out = io.BytesIO()
    for data in payloads:
        out.write(struct.pack("I", 0xCED7230A))
        out.write(struct.pack("I", len(data)))
        out.write(data)
        out.write(b"\0" * ((((len(data) + 3) >> 2) << 2) - len(data)))
    return out.getvalue()


def counts(n_rows: int, n_cols: int, density: float, seed: int = 0) -> sp.csr_matrix:
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed)
    X.data = np.ceil(X.data * 7).astype(np.float32)
    return sp.csr_matrix(X, dtype=np.float32)


class ShortReads(io.RawIOBase):
    """A file that returns at most 3 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 3) if n >= 0 else 3)


# --- schema and framing ------------------------------------------------------------------------


def test_generated_module_matches_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    shutil.copytree(REPO / "serving", tmp_path / "serving", ignore=lambda *_: ["*.py", "*.pyc"])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "serving/record.proto",
        ],
        cwd=tmp_path,
        check=True,
    )
    regenerated = (tmp_path / "serving" / "record_pb2.py").read_text()
    assert regenerated == (REPO / "serving" / "record_pb2.py").read_text()


def test_schema_is_the_published_one() -> None:
    assert record_pb2.DESCRIPTOR.package == "aialgs.data"
    assert 'syntax = "proto2";' in (REPO / "serving" / "record.proto").read_text()
    assert record_pb2.Record.DESCRIPTOR.fields_by_name["uid"].has_presence
    fields = {f.name: f.number for f in record_pb2.Value.DESCRIPTOR.fields}
    assert fields == {"float32_tensor": 2, "float64_tensor": 3, "int32_tensor": 7, "bytes": 9}
    record_fields = {f.name: f.number for f in record_pb2.Record.DESCRIPTOR.fields}
    assert record_fields == {"features": 1, "label": 2, "uid": 3, "metadata": 4, "configuration": 5}
    # Packed float32 values (field 1), uint64 keys (2) and shape (3), exactly as on the wire.
    record = recordio.make_record(features={"values": [1.0, 2.0]})
    assert record.SerializeToString() == (
        b"\n\x16\n\x06values\x12\x0c\x12\n\n\x08\x00\x00\x80?\x00\x00\x00@"
    )
    sparse = recordio.encode_sparse_rows(sp.csr_matrix(np.array([[0, 3.0, 0]], np.float32)))
    tensor = next(recordio.read_records(sparse)).features["values"].float32_tensor
    assert tensor.SerializeToString() == b"\n\x04\x00\x00@@\x12\x01\x01\x1a\x01\x03"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5])
def test_frame_matches_sdk_v2(size: int) -> None:
    payload = bytes(range(1, size + 1))
    framed = recordio.frame(payload)
    assert framed[:4] == b"\x0a\x23\xd7\xce"
    assert framed == sdk_v2_write([payload])
    assert len(framed) % 4 == 0
    assert list(recordio.iter_payloads(framed)) == [payload]


def test_write_records_counts_and_reads_back() -> None:
    records = [recordio.make_record(features={"values": [i, i + 0.5]}) for i in range(5)]
    buf = io.BytesIO()
    assert recordio.write_records(buf, records) == 5
    data = buf.getvalue()
    assert data == sdk_v2_write([r.SerializeToString() for r in records])
    assert list(recordio.read_records(data)) == records
    assert list(recordio.read_records(io.BytesIO(data))) == records
    assert list(recordio.read_records(ShortReads(data))) == records
    assert list(recordio.read_records(memoryview(data))) == records
    assert list(recordio.read_records(b"")) == []


def _bad(data: bytes, match: str) -> None:
    with pytest.raises(RecordIOError, match=match):
        list(recordio.read_records(data))
    with pytest.raises(RecordIOError, match=match):
        list(recordio.read_records(io.BytesIO(data)))


def test_refuses_bad_framing() -> None:
    good = recordio.frame(recordio.make_record(features={"values": [1.0]}).SerializeToString())
    _bad(b"\x00" * 4 + good[4:], "bad magic 0x00000000")
    for flag in (1, 2, 4):
        word = struct.unpack_from("<I", good, 4)[0] | (flag << 29)
        _bad(good[:4] + struct.pack("<I", word) + good[8:], f"continuation flag {flag}")
    _bad(good + good[:5], f"record 2 at byte {len(good)}: truncated header")
    _bad(good[:-3], "truncated record")
    _bad(recordio.frame(b"abc")[:-1] + b"\x01", "non-zero padding")
    _bad(recordio.frame(b"\xff\xff\xff"), "record 1 is not a valid aialgs.data.Record")
    assert issubclass(RecordIOError, BadRequest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_serving_errors(data: bytes) -> None:
    for source in (data, io.BytesIO(data)):
        with contextlib.suppress(RecordIOError):
            list(recordio.read_records(source))
    for call in (
        lambda: recordio.decode_matrix(data),
        lambda: recordio.decode_matrix(data, n_cols=3),
        lambda: recordio.decode_tensor_rows(data, "label", "topic_weights"),
    ):
        with contextlib.suppress(ServingError):
            call()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_framed_random_payloads_raise_only_serving_errors(payload: bytes) -> None:
    try:
        recordio.decode_matrix(recordio.frame(payload))
        recordio.decode_tensor_rows(recordio.frame(payload), "features", "values")
    except ServingError:
        pass


# --- tensors -----------------------------------------------------------------------------------


def test_sparse_rows_round_trip_with_labels_and_empty_rows() -> None:
    keep = np.ones(50, np.float32)
    keep[3] = 0
    X = sp.csr_matrix(sp.diags(keep) @ counts(50, 30, 0.1), dtype=np.float32)
    X.eliminate_zeros()
    label = np.arange(50, dtype=np.float32)
    data = recordio.encode_sparse_rows(X, label)
    records = list(recordio.read_records(data))
    assert len(records) == 50
    empty = records[3].features["values"].float32_tensor
    assert list(empty.values) == [] and list(empty.keys) == [] and list(empty.shape) == [30]
    assert records[3].features["values"].HasField("float32_tensor")
    Y = recordio.decode_matrix(data)
    assert sp.issparse(Y) and Y.shape == (50, 30) and Y.dtype == np.float32
    assert (Y != X).nnz == 0
    labels = recordio.decode_tensor_rows(data, "label", "values")
    assert np.array_equal(np.concatenate(labels), label)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 40),
    st.floats(0.0, 1.0),
    st.integers(0, 2**16),
)
def test_sparse_round_trip_property(n_rows: int, n_cols: int, density: float, seed: int) -> None:
    X = counts(n_rows, n_cols, density, seed)
    Y = recordio.decode_matrix(recordio.encode_sparse_rows(X), n_cols=n_cols)
    assert Y.shape == X.shape and (sp.csr_matrix(Y) != X).nnz == 0


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(0, 10), st.integers(1, 5)),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
def test_dense_round_trip_property(X: np.ndarray) -> None:
    data = recordio.encode_dense_rows(X)
    Y = recordio.decode_matrix(data)
    assert isinstance(Y, np.ndarray) and Y.dtype == np.float32
    assert np.array_equal(Y.reshape(X.shape), X)
    assert [r.tolist() for r in recordio.decode_tensor_rows(data, "features", "values")] == (
        X.tolist()
    )


def test_outputs_of_ntm_and_knn_shapes() -> None:
    W = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    data = recordio.encode_dense_rows(W, key="topic_weights", where="label")
    for record in recordio.read_records(data):
        assert len(record.features) == 0 and list(record.label) == ["topic_weights"]
    assert np.array_equal(np.vstack(recordio.decode_tensor_rows(data, "label", "topic_weights")), W)
    knn = recordio.encode_tensor_rows(
        2,
        label={
            "predicted_label": np.array([3.0, 4.0]),
            "labels": np.array([[3, 1], [4, 4]]),
            "distances": np.array([[0.1, 0.2], [0.3, 0.4]]),
        },
    )
    record = next(recordio.read_records(knn))
    assert list(record.label["predicted_label"].float32_tensor.values) == [3.0]
    assert list(record.label["labels"].float32_tensor.values) == [3.0, 1.0]
    with pytest.raises(ValueError):
        recordio.encode_dense_rows(W, label=np.ones(4), where="label")


def test_float64_int32_and_mixed_dense_sparse() -> None:
    a = recordio.make_record(features={"values": [1.5, 0.0, 2.0]}, tensor_type="float64")
    b = recordio.make_record(features={"values": [0, 7, 0]}, tensor_type="int32")
    c = record_pb2.Record()
    t = c.features["values"].float32_tensor
    t.values.extend([4.0])
    t.keys.extend([2])
    t.shape.extend([3])
    data = recordio.encode_records([a, b, c])
    M = recordio.decode_matrix(data)
    assert sp.issparse(M) and M.dtype == np.float64
    assert M.toarray().tolist() == [[1.5, 0, 2], [0, 7, 0], [0, 0, 4]]
    dense = recordio.decode_matrix(recordio.encode_records([b, b]))
    assert isinstance(dense, np.ndarray) and dense.dtype == np.int32
    rows = recordio.decode_tensor_rows(data, "features", "values")
    assert [r.dtype for r in rows] == [np.float64, np.int32, np.float32]
    assert rows[2].tolist() == [0, 0, 4]


def _sparse_record(keys: list[int], values: list[float], shape: list[int] | None) -> bytes:
    record = record_pb2.Record()
    t = record.features["values"].float32_tensor
    t.keys.extend(keys)
    t.values.extend(values)
    t.shape.extend(shape or [])
    return recordio.encode_records([record])


def test_shape_errors_are_422() -> None:
    dense3 = recordio.encode_dense_rows(np.ones((2, 3)))
    with pytest.raises(UnprocessableEntity, match="has 3 columns; expected 4"):
        recordio.decode_matrix(dense3, n_cols=4)
    mixed = recordio.encode_records(
        [recordio.make_record(features={"values": v}) for v in ([1, 2], [1, 2, 3])]
    )
    with pytest.raises(UnprocessableEntity, match="record 2"):
        recordio.decode_matrix(mixed)
    with pytest.raises(UnprocessableEntity, match="outside"):
        recordio.decode_matrix(_sparse_record([5], [1.0], [3]))
    with pytest.raises(UnprocessableEntity, match="2 keys, 1 values"):
        recordio.decode_matrix(_sparse_record([0, 1], [1.0], [3]))
    with pytest.raises(UnprocessableEntity, match="no shape"):
        recordio.decode_matrix(_sparse_record([0], [1.0], None))
    assert recordio.decode_matrix(_sparse_record([0], [1.0], None), n_cols=2).shape == (1, 2)
    with pytest.raises(UnprocessableEntity, match="too wide"):
        recordio.decode_matrix(_sparse_record([0], [1.0], [2**40]))
    with pytest.raises(UnprocessableEntity, match="too wide"):
        recordio.decode_tensor_rows(_sparse_record([0], [1.0], [2**40]), "features", "values")
    with pytest.raises(PayloadTooLarge, match="more than"):
        recordio.decode_tensor_rows(_sparse_record([0], [1.0], [2**25]), "features", "values")
    with pytest.raises(UnprocessableEntity, match="expected 20"):  # before allocating
        recordio.decode_tensor_rows(_sparse_record([0], [1.0], [2**24]), "features", "values", 20)
    with pytest.raises(PayloadTooLarge, match="more than 100 values"):
        recordio.decode_tensor_rows(_sparse_record([0], [1.0], [64]) * 2, "features", "values",
                                    64, max_values=100)
    matrix = recordio.decode_matrix(_sparse_record([0], [1.0], [2**25]))
    assert matrix.shape == (1, 2**25) and matrix.nnz == 1
    with pytest.raises(UnprocessableEntity, match="expected a vector"):
        recordio.decode_matrix(_sparse_record([0], [1.0], [2, 2]))
    grid = recordio.decode_tensor_rows(_sparse_record([3], [1.0], [2, 2]), "features", "values")
    assert grid[0].tolist() == [[0, 0], [0, 1]]
    no_values = recordio.encode_dense_rows(np.ones((1, 2)), key="topic_weights", where="label")
    with pytest.raises(UnprocessableEntity, match=r"no features\['values'\].*'topic_weights'"):
        recordio.decode_matrix(no_values)
    raw = record_pb2.Record()
    raw.features["values"].bytes.value.append(b"x")
    with pytest.raises(UnprocessableEntity, match="holds bytes"):
        recordio.decode_matrix(recordio.encode_records([raw]))


# --- speed -------------------------------------------------------------------------------------
