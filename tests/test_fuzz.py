"""Property-based fuzzing of /invocations: 4 stages x 2,500 generated requests (deep nesting and
huge declared shapes among them), none may be answered with a 5xx, every error is the typed JSON
body, and no traceback leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import record_pb2, recordio
from serving.app import Server, create_app
from serving.artifact import Model
from serving.config import Settings

EXAMPLES_PER_STAGE = 2500
CONTENT_TYPES = [
    "text/plain", "text/csv", "application/json", "application/jsonlines",
    "application/x-recordio-protobuf", "text/csv; charset=utf-8", "application/json; charset=x",
    "application/x-jsonlines", "image/png", "", "garbage", "text/*", "application/json;;;",
]
ACCEPTS = [None, "*/*", "application/json", "application/jsonlines", "text/csv",
           "application/x-recordio-protobuf", "application/json; verbose=true", "text/html",
           "text/csv;q=0", "application/*", "bogus/", ";;", "application/json; sparse=true"]

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.sampled_from(
                               ["text", "instances", "predictions", "topic_weights", "labels",
                                "distances", "features", "data", "values", "keys", "shape",
                                "predicted_label"]) | st.text(max_size=5), inner, max_size=5),
                           max_leaves=20)
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
topic_rows = st.lists(st.lists(floats, min_size=0, max_size=8), min_size=0, max_size=4)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Arrays/objects nested up to 3,000 deep (orjson stops at 1,024), bare or where a stage
    expects numbers, as one JSON body or one JSON Lines line."""
    depth = draw(st.integers(1, 3000))
    core = (b'{"a":' * depth + b"1" + b"}" * depth) if draw(st.booleans()) else (
        b"[" * depth + b"]" * depth)
    head, tail = draw(st.sampled_from([
        (b"", b""), (b'{"instances": [', b"]}"), (b'{"predictions": [{"topic_weights": ', b"}]}"),
        (b'{"predictions": [{"labels": [0], "distances": ', b"}]}"), (b'"x"\n', b"\n")]))
    return head + core + tail


@st.composite
def huge_shapes(draw: st.DrawFn) -> bytes:
    """Sparse RecordIO tensors declaring up to 2**31 - 1 elements with a few keys."""
    records = []
    for _ in range(draw(st.integers(1, 4))):
        record = record_pb2.Record()
        where = draw(st.sampled_from(["features", "label"]))
        key = draw(st.sampled_from(["values", "topic_weights", "labels", "distances"]))
        tensor = getattr(record, where)[key].float32_tensor
        shape = draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=2))
        width = int(np.prod(shape, dtype=object))
        keys = draw(st.lists(st.integers(0, max(0, min(width, 2**40) - 1)), max_size=8))
        tensor.keys.extend(keys)
        tensor.values.extend([1.0] * len(keys))
        tensor.shape.extend(shape)
        records.append(record)
    return recordio.encode_records(records)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 8))
    if kind == 7:
        return draw(deep_json())
    if kind == 8:
        return draw(huge_shapes())
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    if kind == 2:
        return orjson.dumps(draw(json_values), option=orjson.OPT_NON_STR_KEYS)
    if kind == 3:
        rows = draw(topic_rows)
        return orjson.dumps({"predictions": [{"topic_weights": r} for r in rows]},
                            option=orjson.OPT_SERIALIZE_NUMPY)
    if kind == 4:
        rows = draw(st.lists(st.tuples(st.lists(st.integers(-5, 10**6), max_size=4),
                                       st.lists(st.floats(-10, 10), max_size=4)), max_size=3))
        return orjson.dumps({"predictions": [{"labels": a, "distances": b,
                                              "predicted_label": 1.0} for a, b in rows]})
    if kind == 5:
        lines = draw(st.lists(st.text(max_size=40), max_size=5))
        return "\n".join(orjson.dumps(x).decode() for x in lines).encode()
    rows = draw(st.lists(st.lists(floats, min_size=1, max_size=5), min_size=1, max_size=3))
    width = min(len(r) for r in rows)
    where = draw(st.sampled_from(["features", "label"]))
    key = draw(st.sampled_from(["values", "topic_weights", "labels", "distances"]))
    data = recordio.encode_dense_rows(np.asarray([r[:width] for r in rows], dtype=np.float32),
                                      key=key, where=where)
    cut = draw(st.integers(0, 3))
    return data[: len(data) - cut] if cut else data


@pytest.fixture(scope="module")
def clients(tiny_model_dir: Path):
    model = Model.load(tiny_model_dir)
    made = {}
    for stage in ("classify", "ntm-features", "topics-to-knn", "recommend"):
        server = Server(model, Settings.from_env({"SERVING_STAGE": stage,
                                                  "SERVING_MAX_REQUEST_BYTES": "65536",
                                                  "SERVING_MAX_RECORDS": "50",
                                                  "SERVING_LOG_LEVEL": "CRITICAL"}))
        server.warm_up()
        made[stage] = create_app(server).test_client()
    return made


@pytest.mark.parametrize("stage", ["classify", "ntm-features", "topics-to-knn", "recommend"])
def test_no_generated_request_gets_a_5xx(clients, stage: str) -> None:
    client = clients[stage]
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES_PER_STAGE, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies(), content_type=st.sampled_from(CONTENT_TYPES),
           accept=st.sampled_from(ACCEPTS),
           attributes=st.none() | st.sampled_from(["top_k=2", "top_k=0", "top_k=x", "a=b,,",
                                                   "top_k=99999", "explain=3", "explain=0",
                                                   "explain", "top_k=1;explain=50"]))
    def run(body: bytes, content_type: str, accept: str | None, attributes: str | None) -> None:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        if attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        response = client.post("/invocations", data=body, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code >= 400:
            payload = orjson.loads(response.get_data())
            assert set(payload) == {"error", "message", "request_id"}
            assert "Traceback" not in payload["message"]
        assert response.headers.get("Content-Type")

    run()
    assert sum(seen.values()) >= EXAMPLES_PER_STAGE
    assert any(400 <= s < 500 for s in seen)
