"""application/x-npy: serving.npy against NumPy's own np.save/np.load, and over HTTP as the input
of topics-to-knn and the output of ntm-features and topics-to-knn (the SageMaker SDK's
NumpySerializer/NumpyDeserializer default)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from serving import npy
from serving.artifact import Model
from serving.errors import BadRequest, PayloadTooLarge, UnprocessableEntity
from tests.conftest import RunningServer

NPY = "application/x-npy"
DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer"]


def saved(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def loaded(body: bytes) -> np.ndarray:
    return np.load(io.BytesIO(body), allow_pickle=False)


# --- the codec ---------------------------------------------------------------------------------


def test_encode_is_np_save() -> None:
    W = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    assert npy.encode(W) == saved(W)
    np.testing.assert_array_equal(loaded(npy.encode(W)), W)


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i8", "|u1", "<f2"])
@pytest.mark.parametrize("fortran", [False, True])
def test_decode_reads_what_np_save_writes(dtype: str, fortran: bool) -> None:
    M = (np.arange(12).reshape(3, 4) + 1).astype(dtype)
    M = np.asfortranarray(M) if fortran else M
    got = npy.decode_rows(saved(M), 4, 1000, 100)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, M.astype(np.float32))


def test_decode_one_record_and_version_2() -> None:
    np.testing.assert_array_equal(npy.decode_rows(saved(np.ones(4)), 4, 100, 10), np.ones((1, 4)))
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ones((2, 3)), version=(2, 0))
    assert npy.decode_rows(buffer.getvalue(), 3, 100, 10).shape == (2, 3)


def test_a_pickle_is_never_loaded() -> None:
    class Boom:
        def __reduce__(self):  # what a hostile client sends: runs on np.load(allow_pickle=True)
            return (exec, ("raise SystemExit('pickle executed')",))

    for body in (saved(np.array([Boom()], dtype=object)), pickle.dumps(Boom())):
        with pytest.raises(BadRequest):
            npy.decode_rows(body, None, 100, 10)


@pytest.mark.parametrize("body, error", [
    (b"", BadRequest),
    (b"1,2,3\n", BadRequest),
    (b"\x93NUMPY\x01\x00\x10\x00{'garbage'      }", BadRequest),
    (saved(np.ones((2, 3)))[:-1], BadRequest),          # cut short
    (saved(np.ones((2, 3))) + b"\x00", BadRequest),     # trailing bytes
    (saved(np.array([1 + 2j])), BadRequest),            # complex is not a topic weight
    (saved(np.array([(1, 2.0)], dtype="i4,f8")), BadRequest),
    (saved(np.ones((2, 2, 2))), UnprocessableEntity),
    (saved(np.ones((2, 4))), UnprocessableEntity),      # width 4, 3 expected
    (saved(np.array([[np.nan, 1, 1]])), UnprocessableEntity),
    (saved(np.ones((0, 3))), BadRequest),
    (saved(np.ones((11, 3))), PayloadTooLarge),         # 11 records, limit 10
])
def test_decode_refusals(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        npy.decode_rows(body, 3, 10_000, 10)


def test_a_huge_declared_shape_is_refused_before_allocation() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)})
    with pytest.raises(PayloadTooLarge, match="values; the limit is"):
        npy.decode_rows(buffer.getvalue() + b"\0" * 64, 3, 1 << 22, None)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (1000, 3)})
    with pytest.raises(BadRequest, match="declares 24000 data bytes"):
        npy.decode_rows(buffer.getvalue() + b"\0" * 64, 3, 1 << 22, None)


# --- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Model:
    return Model.load(tiny_model_dir)


@pytest.fixture(scope="module")
def servers(tiny_model_dir: Path, server_factory) -> dict[str, RunningServer]:
    """The two stages that speak application/x-npy (one worker each)."""
    started = {}
    for stage in ("ntm-features", "topics-to-knn"):
        started[stage] = server_factory(tiny_model_dir, stage, workers=1)
    return started


@pytest.mark.parametrize("accept", [NPY, "text/csv"])
def test_topics_to_knn_reads_npy(servers, model: Model, accept: str) -> None:
    W = np.random.default_rng(0).dirichlet(np.ones(model.num_topics), size=4)
    response = servers["topics-to-knn"].post(saved(W), NPY, accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == accept
    if accept == NPY:
        got = loaded(response.content)
        assert got.dtype == np.float32 and got.shape == W.shape
    else:
        got = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
    np.testing.assert_allclose(got, W / np.linalg.norm(W, axis=1, keepdims=True), rtol=1e-6)


def test_topics_to_knn_writes_npy_from_json(servers, model: Model) -> None:
    W = np.random.default_rng(2).dirichlet(np.ones(model.num_topics), size=3)
    body = orjson.dumps({"predictions": [{"topic_weights": w.tolist()} for w in W]})
    response = servers["topics-to-knn"].post(body, "application/json", NPY)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(loaded(response.content),
                               W / np.linalg.norm(W, axis=1, keepdims=True), rtol=1e-6)


def test_topics_to_knn_npy_errors_are_json(servers, model: Model) -> None:
    bad = servers["topics-to-knn"].post(saved(np.array(["a"], dtype=object)), NPY)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request", bad.text
    wrong = servers["topics-to-knn"].post(saved(np.ones((1, model.num_topics + 1))), NPY)
    assert wrong.status_code == 422, wrong.text
    assert f"expected {model.num_topics}" in wrong.json()["message"]


def test_ntm_features_writes_npy(servers, model: Model) -> None:
    response = servers["ntm-features"].post(orjson.dumps({"instances": DOCS}),
                                            "application/json", NPY)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == NPY
    got = loaded(response.content)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, model.featurizer.transform(DOCS).toarray())


def test_ntm_features_does_not_read_npy(servers) -> None:
    response = servers["ntm-features"].post(saved(np.ones((1, 3))), NPY)
    assert response.status_code == 415, response.text


def test_npy_is_not_a_batch_answer(tiny_model_dir: Path, server_factory) -> None:
    """A batch answer is one line per record; one .npy array per request cannot be."""
    server = server_factory(tiny_model_dir, "ntm-features", workers=1,
                            env={"SAGEMAKER_BATCH": "true"})
    response = server.post(DOCS[0].encode(), "text/plain", NPY)
    assert response.status_code == 406, response.text


@pytest.mark.parametrize(("shape", "error"), [
    ((2**32, 2**32), PayloadTooLarge),  # 2**64 values: wraps to 0 in int64 arithmetic
    ((2**63, 2), PayloadTooLarge),
    ((0, 2**62), PayloadTooLarge),  # no values, but no array of that shape can be made
    ((2**62, 0), PayloadTooLarge),
    ((-1, 3), BadRequest),
])
def test_declared_shapes_that_overflow_or_make_no_sense_are_4xx(
        shape: tuple[int, ...], error: type[Exception]) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with pytest.raises(error):
        npy.decode_rows(buffer.getvalue(), 3, 1 << 22, None)
