import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from serving import vectors
from serving.errors import BadRequest, UnprocessableEntity
from serving.mediatypes import parse_content_type

JSON = parse_content_type("application/json")
JSONL = parse_content_type("application/jsonlines")


def test_csv_rows_round_trip_dense_and_sparse() -> None:
    M = np.array([[0, 1.5, 2], [3, 0, 0]], dtype=np.float32)
    text = vectors.dense_csv(M).decode()
    assert text.splitlines() == ["0,1.5,2", "3,0,0"]
    np.testing.assert_array_equal(vectors.csv_matrix(text, 3), M)
    assert vectors.sparse_csv(sp.csr_matrix(M)).decode() == text
    with pytest.raises(UnprocessableEntity):
        vectors.csv_matrix("1,2\n", 3)
    with pytest.raises(BadRequest):
        vectors.csv_matrix("1,x,2\n", 3)


def test_json_instances_dense_and_sparse_forms() -> None:
    body = orjson.dumps({"instances": [
        {"features": [0, 2, 0]},
        {"data": {"features": {"values": [1, 0, 0]}}},
        {"data": {"features": {"keys": [2], "shape": [3], "values": [5]}}},
    ]})
    X = vectors.json_rows(body, JSON, 3)
    np.testing.assert_array_equal(X.toarray(), [[0, 2, 0], [1, 0, 0], [0, 0, 5]])
    lines = b'{"features": [1, 1, 1]}\n\n{"features": [0, 0, 1]}\n'
    np.testing.assert_array_equal(vectors.json_rows(lines, JSONL, 3).toarray(),
                                  [[1, 1, 1], [0, 0, 1]])


def test_ntm_output_is_named_when_it_arrives_as_a_request() -> None:
    body = orjson.dumps({"predictions": [{"topic_weights": [0.5, 0.5]}]})
    with pytest.raises(UnprocessableEntity, match="topics-to-knn"):
        vectors.json_rows(body, JSON, 2)


@pytest.mark.parametrize("value", [[True, 2], [0.5, False], [True], [1, 2, True]])
def test_booleans_are_not_numbers(value: list) -> None:
    with pytest.raises(BadRequest, match="must be an array of numbers"):
        vectors.vector(value, "instance 1 features")


def test_numbers_pass() -> None:
    assert vectors.vector([1, 2.5, 0], "x").tolist() == [1.0, 2.5, 0.0]
    assert vectors.vector([], "x").size == 0
