"""Hostile input: deep JSON, huge declared shapes, amplifying requests, out-of-range numbers,
hostile model and training directories. Nothing may crash a worker, answer 5xx, print a
traceback to a client, or write plain-text warnings; every refusal says what to change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import formats, jsondoc, neighbours, record_pb2, recordio
from serving.app import Server, create_app
from serving.artifact import MANIFEST, Model
from serving.config import Settings
from serving.errors import BadRequest, ModelLoadError, PayloadTooLarge, UnprocessableEntity
from serving.mediatypes import parse_content_type
from serving.text import Cleaner, split_headers
from tests.conftest import REPO

STAGES = ("classify", "ntm-features", "topics-to-knn", "recommend")
RECORDIO = "application/x-recordio-protobuf"
DEEP = 200_000  # crashed orjson 3.8.3 (C stack overflow) at 140,000


def deep_array(n: int) -> bytes:
    return b"[" * n + b"]" * n


def deep_object(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


def deep_bodies(n: int) -> list[tuple[str, bytes]]:
    """Deep nesting at the top level and inside each stage's expected shape."""
    inner = deep_array(n)
    return [
        ("application/json", deep_array(n)),
        ("application/json", deep_object(n)),
        ("application/json", b'{"instances": [' + inner + b"]}"),
        ("application/json", b'{"predictions": [{"topic_weights": ' + inner + b"}]}"),
        ("application/json", b'{"predictions": [{"labels": [0], "distances": ' + inner + b"}]}"),
        ("application/jsonlines", b'"ok"\n' + deep_array(n) + b"\n"),
        ("application/jsonlines", b'{"features": ' + inner + b"}\n"),
    ]


def make_client(model_dir: Path, stage: str, **env: str):
    settings_ = Settings.from_env({"SERVING_STAGE": stage, "SERVING_LOG_LEVEL": "CRITICAL",
                                   **env})
    server = Server(Model.load(model_dir), settings_)
    server.warm_up()
    return create_app(server).test_client()


@pytest.fixture(scope="module")
def clients(tiny_model_dir: Path) -> dict:
    return {stage: make_client(tiny_model_dir, stage) for stage in STAGES}


@pytest.fixture(scope="module")
def small_out(tiny_model_dir: Path) -> dict:
    """Servers whose answers may be at most 20,000 bytes (SageMaker's is 6 MB)."""
    return {stage: make_client(tiny_model_dir, stage, SERVING_MAX_RESPONSE_BYTES="20000")
            for stage in STAGES}


def post(client, body: bytes, content_type: str, accept: str | None = None, **headers: str):
    hdrs = {"Content-Type": content_type, **headers}
    if accept:
        hdrs["Accept"] = accept
    return client.post("/invocations", data=body, headers=hdrs)


def error_of(response) -> dict:
    payload = orjson.loads(response.get_data())
    assert set(payload) == {"error", "message", "request_id"}
    assert "Traceback" not in payload["message"]
    return payload


# --- 1. deep JSON ------------------------------------------------------------------------------


def test_the_parser_stops_at_depth_1024_without_recursing() -> None:
    assert jsondoc.loads(deep_array(jsondoc.MAX_DEPTH)) is not None
    for body in (deep_array(jsondoc.MAX_DEPTH + 1), deep_array(DEEP), deep_object(DEEP)):
        with pytest.raises(jsondoc.JSONError, match="nested more than 1024") as info:
            jsondoc.loads(body, "the body")
        assert info.value.too_deep
    with pytest.raises(jsondoc.JSONError, match="malformed JSON in x") as bad:
        jsondoc.loads(b"[1,", "x")
    assert not bad.value.too_deep


def test_a_parser_without_the_limit_is_refused_at_import(tmp_path: Path) -> None:
    fake = tmp_path / "orjson"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import json\n__version__ = '3.8.3'\nJSONDecodeError = json.JSONDecodeError\n"
        "def loads(s):\n    return []\n")  # parses anything, as 3.8.3 did until it crashed
    result = subprocess.run([sys.executable, "-c", "import serving.jsondoc"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "does not limit JSON nesting" in result.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_deep_json_is_a_400_on_every_stage(clients, stage: str) -> None:
    for content_type, body in deep_bodies(DEEP):
        response = post(clients[stage], body, content_type)
        assert response.status_code == 400, (content_type, body[:40], response.get_data())
        assert "nested more than 1024 levels" in error_of(response)["message"]
        assert response.headers["X-Request-Id"]


@pytest.mark.parametrize("stage", STAGES)
def test_nesting_just_under_the_limit_is_a_4xx_not_a_crash(clients, stage: str) -> None:
    for content_type, body in deep_bodies(jsondoc.MAX_DEPTH - 3):
        response = post(clients[stage], body, content_type)
        assert 400 <= response.status_code < 500, response.get_data()
        error_of(response)


def test_the_standins_codecs_refuse_deep_json() -> None:
    json_type, lines = parse_content_type("application/json"), parse_content_type(
        "application/jsonlines")
    for call in (lambda b, m: formats.decode_ntm_input(b, m, 5),
                 lambda b, m: formats.decode_knn_input(b, m, 5),
                 lambda b, m: formats.decode_ntm_output(b, m, 5),
                 formats.decode_knn_output):
        for media in (json_type, lines):
            with pytest.raises(BadRequest, match="nested more than"):
                call(deep_array(DEEP), media)


# --- model directory ---------------------------------------------------------------------------


def _copy_model(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_hostile_manifests_cannot_be_served(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    manifest = json.loads((model / MANIFEST).read_text())

    def load_with(text: bytes) -> str:
        (model / MANIFEST).write_bytes(text)
        with pytest.raises(ModelLoadError) as info:
            Model.load(model)
        return str(info.value)

    assert "nested more than 1024" in load_with(deep_array(DEEP))
    assert "nested more than 1024" in load_with(deep_object(50_000))
    assert "larger than" in load_with(b" " * (2 << 20) + b"{}")
    outside = tmp_path / "secret.txt"
    outside.write_text("not the model's")
    for name in ("../secret.txt", str(outside), "classifier/../../secret.txt"):
        message = load_with(json.dumps({**manifest, "files": {name: "0" * 64}}).encode())
        assert "leaves the model directory" in message
    (model / "link.txt").symlink_to(outside)
    message = load_with(json.dumps({**manifest, "files": {"link.txt": "0" * 64}}).encode())
    assert "link out of the model directory" in message
    assert "not a manifest" in load_with(b"[1, 2]")


def test_cannot_serve_message_for_a_deep_manifest(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    (model / MANIFEST).write_bytes(deep_array(DEEP))
    result = subprocess.run([sys.executable, "-m", "serving.serve"], cwd=REPO, timeout=120,
                            env={**os.environ, "SM_MODEL_DIR": str(model)},
                            capture_output=True, text=True)
    assert result.returncode == 3
    assert "cannot serve" in result.stderr and "nested more than 1024" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_full_of_empty_containers_is_refused_before_parsing(clients) -> None:
    body = b"[" + b",".join([b"{}"] * 600_000) + b"]"
    for stage in STAGES:
        response = post(clients[stage], body, "application/json")
        assert response.status_code == 413, stage
        assert "more than 500000 arrays, objects and strings" in error_of(response)["message"]
    lines = (b'{"x": [' + b",".join([b"[]"] * 20_000) + b"]}\n") * 30
    response = post(clients["recommend"], lines, "application/jsonlines")
    assert response.status_code == 413
    # brackets and escaped quotes inside strings are text
    text = orjson.dumps({"instances": ['[{"' * 300_000]})
    assert post(clients["classify"], text, "application/json").status_code == 200
    strings = orjson.dumps(["ab"] * 600_000)
    response = post(clients["classify"], strings, "application/json")
    assert response.status_code == 413 and "strings" in error_of(response)["message"]


@pytest.mark.parametrize("window", [1, 2, 3, 7, 64, 1 << 18])
def test_containers_inside_strings_are_not_counted(monkeypatch, window: int) -> None:
    def reference(text: str) -> int:
        n, strings, inside, escaped = 0, 0, False, False
        for ch in text:
            if inside:
                escaped, inside = (False, inside) if escaped else (ch == "\\", ch != '"')
            elif ch == '"':
                inside, strings = True, strings + 1
            else:
                n += ch in "[{"
        return n + strings

    monkeypatch.setattr(jsondoc, "WINDOW", window)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.recursive(st.text(alphabet='[{"\\ab}]', max_size=6) | st.integers(),
                        lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(alphabet='["\\{', max_size=3), inner,
                                          max_size=3)))
    def run(value: object) -> None:
        text = json.dumps(value)
        assert jsondoc.count_containers(text.encode()) == reference(text)

    run()


# --- 3. huge declared shapes -------------------------------------------------------------------


def sparse_topics(n_records: int, width: int, n_keys: int) -> bytes:
    records = []
    for _ in range(n_records):
        record = record_pb2.Record()
        tensor = record.label["topic_weights"].float32_tensor
        tensor.keys.extend(range(0, width, max(1, width // n_keys))[:n_keys])
        tensor.values.extend([0.5] * len(tensor.keys))
        tensor.shape.append(width)
        records.append(record)
    return recordio.encode_records(records)


def test_a_wide_sparse_topic_vector_is_refused_before_it_is_expanded(clients) -> None:
    body = sparse_topics(5, 2**24, 16_384)  # the review's 645 KB body (+320 MB before)
    started = time.perf_counter()
    response = post(clients["topics-to-knn"], body, RECORDIO)
    assert response.status_code == 422
    assert "16777216 values; expected 5" in error_of(response)["message"]
    assert time.perf_counter() - started < 5


def test_expansion_is_capped_per_request(tiny_model_dir: Path) -> None:
    client = make_client(tiny_model_dir, "topics-to-knn", SERVING_MAX_VALUES="1024")
    ok = post(client, sparse_topics(200, 5, 1), RECORDIO)
    assert ok.status_code == 200
    response = post(client, sparse_topics(300, 5, 1), RECORDIO)
    assert response.status_code == 413
    assert "more than 1024 values" in error_of(response)["message"]


def test_sparse_knn_requests_are_densified_within_a_budget() -> None:
    X = np.zeros((50, 1000), dtype=np.float32)
    X[:, 0] = 1
    import scipy.sparse as sp

    body = recordio.encode_sparse_rows(sp.csr_matrix(X))
    media = parse_content_type(RECORDIO)
    assert formats.decode_knn_input(body, media, 1000).shape == (50, 1000)
    with pytest.raises(PayloadTooLarge, match="expand to more than 10000"):
        formats.decode_knn_input(body, media, 1000, max_values=10_000)


# --- output amplification ----------------------------------------------------------------------


def knn_answer(n_records: int, n_neighbours: int, catalog: int) -> bytes:
    labels = [i % catalog for i in range(n_neighbours)]
    distances = [0.5] * n_neighbours
    return orjson.dumps({"predictions": [{"predicted_label": 0.0, "labels": labels,
                                          "distances": distances}] * n_records})


def test_recommend_answers_are_capped(small_out, tiny_model_dir: Path) -> None:
    size = len(Model.load(tiny_model_dir).catalog)
    # SERVING_RECOMMENDATIONS (10) bounds the default answer; top_k asks for more
    assert post(small_out["recommend"], knn_answer(4, 2000, size),
                "application/json").status_code == 200
    response = post(small_out["recommend"], knn_answer(4, 2000, size), "application/json",
                    **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=1000"})
    assert response.status_code == 413
    message = error_of(response)["message"]
    assert "4000 recommendations" in message and "top_k" in message
    fewer = post(small_out["recommend"], knn_answer(4, 2000, size), "application/json",
                 **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"})
    assert fewer.status_code == 200


def test_dense_ntm_features_are_capped_and_sparse_types_suggested(small_out) -> None:
    body = "\n".join(["car engine"] * 300).encode()
    for accept in ("application/json", "text/csv", "application/jsonlines"):
        response = post(small_out["ntm-features"], body, "text/plain", accept,
                        **{"X-Amzn-SageMaker-Custom-Attributes": ""})
        if response.status_code == 200:  # one document: fits
            continue
        assert response.status_code == 413
        assert "sparse=true" in error_of(response)["message"]
    lines = "\n".join(json.dumps("car engine") for _ in range(300)).encode()
    for accept in ("application/json", "text/csv"):
        response = post(small_out["ntm-features"], lines, "application/jsonlines", accept)
        assert response.status_code == 413
        message = error_of(response)["message"]
        assert "sparse=true" in message and "fewer records" in message
    for accept in (RECORDIO, "application/json; sparse=true"):
        assert post(small_out["ntm-features"], lines, "application/jsonlines",
                    accept).status_code == 200


def test_classify_and_topics_answers_are_capped(small_out) -> None:
    lines = "\n".join(json.dumps("car engine") for _ in range(2000)).encode()
    response = post(small_out["classify"], lines, "application/jsonlines", "application/json",
                    **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=4"})
    assert response.status_code == 413 and "top_k" in error_of(response)["message"]
    topics = orjson.dumps({"predictions": [{"topic_weights": [0.2] * 5}] * 3000})
    response = post(small_out["topics-to-knn"], topics, "application/json", "text/csv")
    assert response.status_code == 413 and "fewer records" in error_of(response)["message"]


# --- errors outside /invocations ---------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_404_and_405_are_json_with_the_request_id(clients, stage: str) -> None:
    client = clients[stage]
    for response in (client.get("/nope", headers={"X-Amzn-SageMaker-Inference-Id": "abc-1"}),
                     client.delete("/invocations",
                                   headers={"X-Amzn-SageMaker-Inference-Id": "abc-1"})):
        assert response.status_code in (404, 405)
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Request-Id"] == "abc-1"
        assert error_of(response)["request_id"] == "abc-1"
    response = client.put("/ping")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.headers["X-Request-Id"] == error_of(response)["request_id"]


# --- recommend distances -----------------------------------------------------------------------


@pytest.mark.parametrize("distance", [-5.0, -0.01, 2.5, 1e30, float("nan"), float("inf")])
def test_recommend_refuses_impossible_distances(clients, distance: float) -> None:
    labels, distances = np.array([[0, 1]], dtype=np.float32), np.array([[0.1, distance]])
    body = formats.encode_knn_output(np.zeros(1), labels, distances.astype(np.float32),
                                     parse_content_type("application/json; verbose=true"))
    response = post(clients["recommend"], body, "application/json")
    if not np.isfinite(distance):  # JSON cannot carry it; RecordIO can
        body = recordio.encode_records([recordio.make_record(label={
            "predicted_label": [0.0], "labels": [0, 1], "distances": [0.1, distance]})])
        response = post(clients["recommend"], body, RECORDIO)
    assert response.status_code == 422, response.get_data()
    assert "distance" in error_of(response)["message"]


def test_recommend_accepts_the_whole_metric_range(clients) -> None:
    # cosine distance of identical float32 vectors may round a hair below 0; 2 is the maximum
    body = orjson.dumps({"predictions": [{"predicted_label": 0.0, "labels": [0, 1, 2],
                                          "distances": [-1e-7, 1.414, 2.0]}]})
    assert post(clients["recommend"], body, "application/json").status_code == 200


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=6),
       st.sampled_from([("L2", "euclidean"), ("L2", "squared"), ("COSINE", "euclidean"),
                        ("INNER_PRODUCT", "euclidean")]))
@settings(max_examples=300, deadline=None, database=None)
def test_distance_range_check_matches_the_metric(values: list[float], how) -> None:
    ranking = neighbours.Ranking(*how)
    low, high = ranking.bounds
    d = np.asarray(values)
    tol = neighbours.TOLERANCE
    ok = bool(np.isfinite(d).all() and d.min() >= low - tol and d.max() <= high + tol)
    if ok:
        ranking.rank(d)
    else:
        with pytest.raises(neighbours.NeighbourError):
            ranking.rank(d)


# --- numpy warnings ----------------------------------------------------------------------------


def test_values_beyond_float32_are_422_without_warnings(clients) -> None:
    huge = orjson.dumps({"predictions": [{"topic_weights": [1e39, 0, 0, 0, 0]}]})
    record = recordio.make_record(label={"topic_weights": [1e300, 0, 0, 0, 0]},
                                  tensor_type="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        response = post(clients["topics-to-knn"], huge, "application/json")
        assert response.status_code == 422
        assert "beyond float32" in error_of(response)["message"]
        response = post(clients["topics-to-knn"],
                        recordio.encode_records([record]), RECORDIO)
        assert response.status_code == 422
        with pytest.raises(UnprocessableEntity, match="beyond float32"):
            formats.decode_knn_input(orjson.dumps({"instances": [{"features": [1e39] * 5}]}),
                                     parse_content_type("application/json"), 5)


def test_warnings_are_logged_as_json(capsys) -> None:
    import logging

    from serving import logs

    # An earlier test's logs.configure may have left logging's capture flag set while pytest
    # restored warnings.showwarning after that test: captureWarnings(True) would then do nothing.
    logging.captureWarnings(False)
    logs.configure("INFO")
    try:
        warnings.warn("overflow encountered", RuntimeWarning, stacklevel=1)
        err = capsys.readouterr().err.strip().splitlines()
        assert err and all(line.startswith("{") for line in err)
        assert orjson.loads(err[-1])["logger"] == "py.warnings"
    finally:
        logging.captureWarnings(False)


# --- long documents ----------------------------------------------------------------------------


def test_a_long_real_post_is_classified(clients) -> None:
    post_text = ("Subject: a very long post\n\n"
                 + "the engine of the car and the orbit of the moon " * 3400)[:160_616]
    response = post(clients["classify"], post_text.encode(), "text/plain")
    assert response.status_code == 200, response.get_data()
    body = orjson.dumps({"instances": [post_text] * 3})
    assert post(clients["classify"], body, "application/json").status_code == 200


def test_folded_headers_are_joined_in_linear_time() -> None:
    text = "Subject: x\n" + " more\n" * 170_000 + "\nbody"
    started = time.perf_counter()
    headers, body = split_headers(text)
    assert len(headers[0][1]) == 1 + 5 * 170_000 and body == "body"
    longer = "Subject: x\n" + " more\n" * 600_000 + "\nbody"
    assert split_headers(longer) == ([], longer)  # over MAX_HEADER_CHARS: text, not headers
    Cleaner().fit().clean(text)
    assert time.perf_counter() - started < 10  # quadratic joining took minutes


# --- generated: nesting and shapes on every stage ----------------------------------------------

nest = st.integers(1, 3000)
wrappers = st.sampled_from([
    (b"", b""), (b'{"instances": [', b"]}"), (b'{"predictions": [{"topic_weights": ', b"}]}"),
    (b'{"predictions": [{"labels": [0], "distances": ', b"}]}"),
    (b'{"instances": [{"data": {"features": {"keys": [0], "shape": ', b"}}}]}"),
])


@pytest.mark.parametrize("stage", STAGES)
def test_generated_nesting_never_crashes(clients, stage: str) -> None:
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(depth=nest, wrap=wrappers, obj=st.booleans(),
           content_type=st.sampled_from(["application/json", "application/jsonlines"]))
    def run(depth: int, wrap: tuple[bytes, bytes], obj: bool, content_type: str) -> None:
        core = deep_object(depth) if obj else deep_array(depth)
        response = post(clients[stage], wrap[0] + core + wrap[1], content_type)
        assert response.status_code < 500
        if response.status_code >= 400:
            error_of(response)

    run()




@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_no_hostile_body_ends_a_gunicorn_worker(tiny_model_dir: Path, stage: str) -> None:
    from tests.conftest import start_server

    server = start_server(tiny_model_dir, stage, workers=1)
    try:
        bodies = [*deep_bodies(DEEP), ("application/json", b"[" + b"{}," * 600_000 + b"{}]"),
                  (RECORDIO, sparse_topics(5, 2**24, 16_384)),
                  ("application/json", knn_answer(1, 200_000, 10))]
        for content_type, body in bodies:
            response = server.post(body, content_type)
            # recommend answers 200,000 neighbours with its 10 best (SERVING_RECOMMENDATIONS)
            fine = stage == "recommend" and body == bodies[-1][1] and response.status_code == 200
            assert fine or 400 <= response.status_code < 500, response.text
            if not fine:
                assert response.json()["request_id"] == response.headers["X-Request-Id"]
        ok = {"classify": (b"car engine", "text/plain"),
              "ntm-features": (b"car engine", "text/plain"),
              "topics-to-knn": (orjson.dumps({"predictions": [{"topic_weights": [0.2] * 5}]}),
                                "application/json"),
              "recommend": (knn_answer(1, 3, 3), "application/json")}[stage]
        assert server.post(*ok).status_code == 200
    finally:
        assert server.stop() == 0
    err = server.process.stderr.read().decode(errors="replace") if server.process.stderr else ""
    assert "Worker (pid" not in err and "SIGSEGV" not in err, err[-2000:]
