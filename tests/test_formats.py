"""NTM and k-NN wire formats: exact shapes, round trips, and the refusals k-NN must make."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import orjson
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving import recordio
from serving.errors import (
    BadRequest,
    NotAcceptable,
    ServingError,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from serving.formats import (
    KNN_INPUT_TYPES,
    KNN_OUTPUT_TYPES,
    NTM_INPUT_TYPES,
    NTM_OUTPUT_TYPES,
    content_type_for,
    decode_knn_input,
    decode_knn_output,
    decode_ntm_input,
    decode_ntm_output,
    encode_knn_input,
    encode_knn_output,
    encode_ntm_input,
    encode_ntm_output,
)
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, MediaType, parse_content_type

SPARSE_JSON = MediaType(JSON, {"sparse": "true"})
SPARSE_JSONL = MediaType(JSONLINES, {"sparse": "true"})
NTM_REQUESTS = [MediaType(t) for t in NTM_INPUT_TYPES] + [SPARSE_JSON, SPARSE_JSONL]
VERBOSE = {"verbose": "true"}


def counts(n: int, v: int, seed: int = 0, density: float = 0.3) -> sp.csr_matrix:
    X = sp.random(n, v, density=density, format="csr", random_state=seed)
    X.data = np.ceil(X.data * 5)
    return sp.csr_matrix(X, dtype=np.float32)


def topics(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), n).astype(np.float32)


def wire(media: MediaType) -> MediaType:
    """What the receiving container sees: the Content-Type we send, parsed."""
    return parse_content_type(content_type_for(media))


# --- NTM requests ------------------------------------------------------------------------------


def test_ntm_input_wire_shapes() -> None:
    X = sp.csr_matrix(np.array([[0, 2, 0, 1.5], [0, 0, 0, 0]], np.float32))
    assert encode_ntm_input(X, MediaType(TEXT_CSV)) == b"0,2,0,1.5\n0,0,0,0\n"
    assert orjson.loads(encode_ntm_input(X, MediaType(JSON))) == {
        "instances": [{"features": [0, 2, 0, 1.5]}, {"features": [0, 0, 0, 0]}]
    }
    assert orjson.loads(encode_ntm_input(X, SPARSE_JSON)) == {
        "instances": [
            {"data": {"features": {"keys": [1, 3], "shape": [4], "values": [2, 1.5]}}},
            {"data": {"features": {"keys": [], "shape": [4], "values": []}}},
        ]
    }
    lines = encode_ntm_input(X, SPARSE_JSONL).splitlines()
    assert orjson.loads(lines[0]) == {
        "data": {"features": {"keys": [1, 3], "shape": [4], "values": [2, 1.5]}}
    }
    assert encode_ntm_input(X, MediaType(JSONLINES)).endswith(b"}\n")
    record = next(recordio.read_records(encode_ntm_input(X, MediaType(RECORDIO))))
    tensor = record.features["values"].float32_tensor
    assert list(tensor.keys) == [1, 3] and list(tensor.shape) == [4]
    assert list(tensor.values) == [2.0, 1.5]
    assert content_type_for(SPARSE_JSON) == "application/json"


@pytest.mark.parametrize("media", NTM_REQUESTS, ids=str)
def test_ntm_input_round_trip(media: MediaType) -> None:
    X = counts(20, 15)
    Y = decode_ntm_input(encode_ntm_input(X, media), wire(media), 15)
    assert sp.issparse(Y) and Y.dtype == np.float32 and (Y != X).nnz == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 999), st.floats(0, 1))
def test_ntm_input_round_trip_property(n: int, v: int, seed: int, density: float) -> None:
    X = counts(n, v, seed, density)
    X.data = X.data / 4  # quarters: exact in float32 and in text
    for media in NTM_REQUESTS:
        assert (decode_ntm_input(encode_ntm_input(X, media), wire(media), v) != X).nnz == 0


@pytest.mark.parametrize(
    "body",
    [
        '{"instances": [{"features": [0, 2, 0]}]}',
        '{"instances": [{"data": {"features": {"values": [0, 2, 0]}}}]}',
        '{"instances": [{"data": {"features": {"keys": [1], "shape": [3], "values": [2]}}}]}',
        '{"instances": [{"data": {"features": {"keys": [1, 1], "values": [1.5, 0.5]}}}]}',
    ],
)
def test_ntm_input_every_json_form(body: str) -> None:
    assert decode_ntm_input(body.encode(), MediaType(JSON), 3).toarray().tolist() == [[0, 2, 0]]
    line = json.dumps(json.loads(body)["instances"][0]).encode() + b"\n"
    assert decode_ntm_input(line, MediaType(JSONLINES), 3).toarray().tolist() == [[0, 2, 0]]


def test_ntm_input_dense_recordio_and_csv_variants() -> None:
    dense = recordio.encode_dense_rows(np.array([[0, 2, 0]]))
    assert decode_ntm_input(dense, MediaType(RECORDIO), 3).toarray().tolist() == [[0, 2, 0]]
    body = b'\xef\xbb\xbf0,2,0\r\n\n  \n"1", 0 ,3\n'
    assert decode_ntm_input(body, MediaType(TEXT_CSV), 3).toarray().tolist() == [
        [0, 2, 0],
        [1, 0, 3],
    ]


@pytest.mark.parametrize(
    ("body", "media", "error", "match"),
    [
        (b"1,2,3\n1,2\n", TEXT_CSV, UnprocessableEntity, "CSV line 2 has 2 values; expected 3"),
        (b"1,2,3\n1,x,3\n", TEXT_CSV, BadRequest, "line 2 holds a value that is not a number"),
        (b"1,nan,3\n", TEXT_CSV, UnprocessableEntity, "NaN or infinite"),
        (b"\n\n", TEXT_CSV, BadRequest, "no rows"),
        (b'{"instances": [{"features": [1, 2]}]}', JSON, UnprocessableEntity, "expected 3"),
        (b'{"instances": [{"features": ["a", 1, 2]}]}', JSON, BadRequest, "array of numbers"),
        (b'{"instances": [{"features": [[1], [2], [3]]}]}', JSON, BadRequest, "numbers"),
        (b'{"instances": [{"features": [true, false, true]}]}', JSON, BadRequest, "numbers"),
        (b'{"instances": [{"features": [1e999, 1, 1]}]}', JSON, BadRequest, "malformed JSON"),
        (b'{"instances": []}', JSON, BadRequest, "no instances"),
        (b'{"instances": {}}', JSON, BadRequest, "must be an array"),
        (b'{"instances": [7]}', JSON, BadRequest, "instance 1: expected an object"),
        (b'{"rows": []}', JSON, UnprocessableEntity, 'expected {"instances"'),
        (
            b'{"instances": [{"data": {"features": {"keys": [3], "values": [1]}}}]}',
            JSON,
            UnprocessableEntity,
            "key outside 0..2",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [0], "shape": [4], "values": [1]}}}]}',
            JSON,
            UnprocessableEntity,
            r"shape must be \[3\]",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [0.5], "values": [1]}}}]}',
            JSON,
            BadRequest,
            "integers",
        ),
        (
            b'{"instances": [{"data": {"features": {"keys": [0, 1], "values": [1]}}}]}',
            JSON,
            UnprocessableEntity,
            "2 keys and 1 values",
        ),
        (b'{"features": [1, 2, 3]}\n{"features": [1]}\n', JSONLINES, UnprocessableEntity, "line 2"),
        (b"", RECORDIO, BadRequest, "empty"),
        (recordio.encode_dense_rows(np.ones((1, 4))), RECORDIO, UnprocessableEntity, "expected 3"),
        (b"junkjunk", RECORDIO, BadRequest, "bad magic"),
    ],
)
def test_ntm_input_refusals(body: bytes, media: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        decode_ntm_input(body, MediaType(media), 3)


def test_ntm_input_unsupported_types() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_ntm_input(b"x", MediaType("text/plain"), 3)
    with pytest.raises(NotAcceptable):
        encode_ntm_input(counts(1, 3), MediaType("text/plain"))


def test_ntm_input_csv_round_trips_a_large_matrix() -> None:
    X = counts(1000, 2000, density=0.05)
    body = encode_ntm_input(X, MediaType(TEXT_CSV))
    assert (decode_ntm_input(body, MediaType(TEXT_CSV), 2000) != X).nnz == 0


# --- NTM responses -----------------------------------------------------------------------------


def test_ntm_output_wire_shapes() -> None:
    W = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    assert orjson.loads(encode_ntm_output(W, MediaType(JSON))) == {
        "predictions": [{"topic_weights": [0.25, 0.75]}, {"topic_weights": [1.0, 0.0]}]
    }
    assert encode_ntm_output(W, MediaType(JSONLINES)) == (
        b'{"topic_weights":[0.25,0.75]}\n{"topic_weights":[1.0,0.0]}\n'
    )
    for record in recordio.read_records(encode_ntm_output(W, MediaType(RECORDIO))):
        assert len(record.features) == 0 and list(record.label) == ["topic_weights"]
    with pytest.raises(NotAcceptable, match="text/csv is not an NTM response type"):
        encode_ntm_output(W, MediaType(TEXT_CSV))


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(0, 5), st.integers(1, 6)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_ntm_output_round_trip(W: np.ndarray) -> None:
    for t in NTM_OUTPUT_TYPES:
        body = encode_ntm_output(W, MediaType(t))
        if len(W):
            assert np.array_equal(decode_ntm_output(body, MediaType(t), W.shape[1]), W)


@pytest.mark.parametrize(
    ("body", "media", "n_topics", "error", "match"),
    [
        (b'{"predictions": [{"topic_weights": [1, 0]}]}', JSON, 3, UnprocessableEntity, "2 values"),
        (
            b'{"predictions": [{"topic_weights": [1, 0]}, {"topic_weights": [1]}]}',
            JSON,
            None,
            UnprocessableEntity,
            "prediction 2 has 1 values; expected 2",
        ),
        (b'{"predictions": [{"weights": [1]}]}', JSON, 1, UnprocessableEntity, "topic_weights"),
        (b'{"predictions": [1]}', JSON, 1, UnprocessableEntity, "expected an object"),
        (b'{"instances": []}', JSON, 1, UnprocessableEntity, "predictions"),
        (b'{"predictions": [{"topic_weights": "x"}]}', JSON, 1, BadRequest, "array of numbers"),
        (b'{"predictions": [', JSON, 1, BadRequest, "malformed JSON"),
        (b'{"topic_weights": [1]}\n{"topic_weights": [1, 2]}\n', JSONLINES, 1, UnprocessableEntity,
         "line 2 has 2 values; expected 1"),
        (recordio.encode_dense_rows(np.ones((1, 2))), RECORDIO, 2, UnprocessableEntity,
         "no label"),
        (b"", JSON, 1, BadRequest, "empty"),
    ],
)  # fmt: skip
def test_ntm_output_refusals(
    body: bytes, media: str, n_topics: int | None, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        decode_ntm_output(body, MediaType(media), n_topics)


# --- k-NN requests -----------------------------------------------------------------------------


def test_knn_input_wire_shapes() -> None:
    M = np.array([[0.5, 1.0, 0.0]], np.float32)
    assert encode_knn_input(M, MediaType(TEXT_CSV)) == b"0.5,1,0\n"
    assert orjson.loads(encode_knn_input(M, MediaType(JSON))) == {
        "instances": [{"features": [0.5, 1.0, 0.0]}]
    }
    assert encode_knn_input(M, MediaType(JSONLINES)) == b'{"features":[0.5,1.0,0.0]}\n'
    record = next(recordio.read_records(encode_knn_input(M, MediaType(RECORDIO))))
    assert list(record.features["values"].float32_tensor.values) == [0.5, 1.0, 0.0]
    assert list(record.features["values"].float32_tensor.keys) == []


@pytest.mark.parametrize("t", KNN_INPUT_TYPES)
def test_knn_input_round_trip(t: str) -> None:
    M = topics(30, 8)
    out = decode_knn_input(encode_knn_input(M, MediaType(t)), MediaType(t), 8)
    assert out.dtype == np.float32 and np.array_equal(out, M)


def test_knn_input_csv_label_size() -> None:
    body = b"0.5,0.5\n"
    assert decode_knn_input(body, parse_content_type("text/csv; label_size=0"), 2).shape == (1, 2)
    with pytest.raises(UnprocessableEntity, match="label_size=0"):
        decode_knn_input(body, parse_content_type("text/csv; label_size=1"), 2)


def test_adapter_chain_ntm_to_knn() -> None:
    """What the topics-to-knn stage does: read NTM's answer, write k-NN's request."""
    W = topics(5, 4)
    for out_type in NTM_OUTPUT_TYPES:
        for in_type in KNN_INPUT_TYPES:
            weights = decode_ntm_output(
                encode_ntm_output(W, MediaType(out_type)), wire(MediaType(out_type)), 4
            )
            request = encode_knn_input(weights, MediaType(in_type))
            assert np.array_equal(decode_knn_input(request, MediaType(in_type), 4), W)


@pytest.mark.parametrize("t", NTM_OUTPUT_TYPES)
def test_knn_refuses_ntm_output(t: str) -> None:
    """The reason the adapter stage exists: k-NN cannot read NTM's answer in any format."""
    body = encode_ntm_output(topics(2, 4), MediaType(t))
    with pytest.raises(UnprocessableEntity, match="topics-to-knn") as info:
        decode_knn_input(body, MediaType(t), 4)
    assert 400 <= info.value.status < 500


# --- k-NN responses ----------------------------------------------------------------------------


def test_knn_output_wire_shapes() -> None:
    pred, labels, dist = np.array([3.0]), np.array([[3, 7]]), np.array([[0.25, 0.5]])
    assert orjson.loads(encode_knn_output(pred, None, None, MediaType(JSON))) == {
        "predictions": [{"predicted_label": 3.0}]
    }
    assert orjson.loads(encode_knn_output(pred, labels, dist, MediaType(JSON, VERBOSE))) == {
        "predictions": [{"predicted_label": 3.0, "labels": [3.0, 7.0], "distances": [0.25, 0.5]}]
    }
    line = encode_knn_output(pred, labels, dist, MediaType(JSONLINES, VERBOSE))
    assert line == b'{"predicted_label":3.0,"labels":[3.0,7.0],"distances":[0.25,0.5]}\n'
    record = next(recordio.read_records(encode_knn_output(pred, labels, dist, MediaType(RECORDIO))))
    assert list(record.label) == ["predicted_label"] and len(record.features) == 0
    verbose = encode_knn_output(pred, labels, dist, MediaType(RECORDIO, VERBOSE))
    record = next(recordio.read_records(verbose))
    assert sorted(record.label) == ["distances", "labels", "predicted_label"]
    assert content_type_for(MediaType(JSON, VERBOSE)) == "application/json"
    with pytest.raises(ValueError):
        encode_knn_output(pred, None, None, MediaType(JSON, VERBOSE))
    with pytest.raises(NotAcceptable):
        encode_knn_output(pred, None, None, MediaType(TEXT_CSV))


@pytest.mark.parametrize("t", KNN_OUTPUT_TYPES)
def test_knn_output_round_trip_with_ragged_rows(t: str) -> None:
    labels = [np.array([5, 2, 9]), np.array([1])]
    dist = [np.array([0.5, 1.5, 2.5]), np.array([0.125])]
    body = encode_knn_output(np.array([5.0, 1.0]), labels, dist, MediaType(t, VERBOSE))
    out = decode_knn_output(body, MediaType(t))
    assert [o[0].tolist() for o in out] == [[5, 2, 9], [1]]
    assert [o[1].tolist() for o in out] == [[0.5, 1.5, 2.5], [0.125]]
    assert out[0][0].dtype == np.int64 and out[0][1].dtype == np.float64


@pytest.mark.parametrize("t", KNN_OUTPUT_TYPES)
def test_knn_output_must_be_verbose(t: str) -> None:
    body = encode_knn_output(np.array([5.0]), None, None, MediaType(t))
    with pytest.raises(UnprocessableEntity, match="verbose=true on the k-NN container"):
        decode_knn_output(body, MediaType(t))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"predictions": [{"labels": [1.5], "distances": [0.1]}]}', "non-integer label"),
        (b'{"predictions": [{"labels": [1, 2], "distances": [0.1]}]}', "2 labels but 1"),
        (b'{"predictions": [{"labels": [1], "distances": ["x"]}]}', "array of numbers"),
        (b'{"instances": []}', "predictions"),
    ],
)
def test_knn_output_refusals(body: bytes, match: str) -> None:
    with pytest.raises(ServingError, match=match):
        decode_knn_output(body, MediaType(JSON))
    with pytest.raises(UnsupportedMediaType):
        decode_knn_output(body, MediaType(TEXT_CSV))


# --- robustness --------------------------------------------------------------------------------

DECODERS = [
    (lambda b, m: decode_ntm_input(b, m, 3), NTM_INPUT_TYPES),
    (lambda b, m: decode_ntm_output(b, m, None), NTM_OUTPUT_TYPES),
    (lambda b, m: decode_knn_input(b, m, 3), KNN_INPUT_TYPES),
    (decode_knn_output, KNN_OUTPUT_TYPES),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.integers(0, 3), st.integers(0, 3))
def test_random_bytes_raise_only_serving_errors(body: bytes, which: int, type_idx: int) -> None:
    decoder, types = DECODERS[which]
    with contextlib.suppress(ServingError):
        decoder(body, MediaType(types[type_idx % len(types)]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(-1e9, 1e9) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["instances", "features", "data", "values", "keys", "shape",
                         "predictions", "topic_weights", "labels", "distances"]),
        kids, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(json_values, st.integers(0, 3), st.booleans())
def test_random_json_raises_only_serving_errors(doc: object, which: int, lines: bool) -> None:
    decoder, _ = DECODERS[which]
    body = json.dumps(doc).encode() + b"\n"
    with contextlib.suppress(ServingError):
        decoder(body, MediaType(JSONLINES if lines else JSON))
