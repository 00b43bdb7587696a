"""The stand-in servers' HTTP contract (§1, §4, §5): every request and response format, content
negotiation, and the refusals, through Flask's test client and through real gunicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from standin_helpers import NUM_TOPICS, VOCAB_SIZE, planted_counts

from serving import formats, recordio
from serving.mediatypes import parse_media_type
from standins.server import application, load_stage, standin_settings
from standins.train import knn_query, ntm_infer

JSON, JSONL, CSV = "application/json", "application/jsonlines", "text/csv"
RECORDIO = "application/x-recordio-protobuf"
QUERY = planted_counts(per_group=2, seed=5)[0]  # 8 documents


def media(value: str) -> Any:
    return parse_media_type(value)


def create_app(role: str, model_dir: Path, **settings: Any) -> Any:
    """The stand-in's WSGI app as gunicorn's workers serve it (settings as the environment
    would give them, with ``settings`` changed)."""
    return application(load_stage(role, model_dir, {}), standin_settings({}, **settings))


class Client:
    def __init__(self, app: Any) -> None:
        self.client = app.test_client()

    def post(self, body: bytes, content_type: str | None, accept: str | None = None) -> Any:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return self.client.post("/invocations", data=body, headers=headers)


@pytest.fixture(scope="module")
def ntm(trained: Path) -> Client:
    return Client(create_app("ntm", trained / "ntm"))


@pytest.fixture(scope="module")
def knn(trained: Path) -> Client:
    return Client(create_app("knn", trained / "knn"))


@pytest.fixture(scope="module")
def expected_topics(trained: Path) -> np.ndarray:
    return ntm_infer(trained / "ntm", QUERY)


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.data[:300]
    assert response.content_type == JSON
    doc = orjson.loads(response.data)
    assert set(doc) == {"error", "message", "request_id"} and "Traceback" not in doc["message"]
    return str(doc["message"])


# --- NTM ---------------------------------------------------------------------------------------


def ntm_requests() -> list[tuple[str, str, bytes]]:
    dense = QUERY.toarray()
    values = {"instances": [{"data": {"features": {"values": row.tolist()}}} for row in dense]}
    dense_records = recordio.encode_dense_rows(dense)
    return [
        ("csv", CSV, formats.encode_ntm_input(QUERY, media(CSV))),
        ("json features", JSON, formats.encode_ntm_input(QUERY, media(JSON))),
        ("json data.features.values", JSON, orjson.dumps(values)),
        ("json sparse", JSON, formats.encode_ntm_input(QUERY, media(JSON + "; sparse=true"))),
        ("jsonlines", JSONL, formats.encode_ntm_input(QUERY, media(JSONL))),
        ("jsonlines sparse", JSONL, formats.encode_ntm_input(QUERY, media(JSONL + ";sparse=1"))),
        ("recordio sparse", RECORDIO, formats.encode_ntm_input(QUERY, media(RECORDIO))),
        ("recordio dense", RECORDIO, dense_records),
    ]


@pytest.mark.parametrize(
    ("name", "content_type", "body"), ntm_requests(), ids=[r[0] for r in ntm_requests()]
)
@pytest.mark.parametrize("accept", [JSON, JSONL, RECORDIO])
def test_ntm_reads_every_request_format_and_writes_every_response_format(
    ntm: Client, expected_topics: np.ndarray, name: str, content_type: str, body: bytes, accept: str
) -> None:
    response = ntm.post(body, content_type, accept)
    assert response.status_code == 200, response.data[:300]
    assert response.content_type == accept
    W = formats.decode_ntm_output(response.data, media(accept), NUM_TOPICS)
    np.testing.assert_allclose(W, expected_topics, atol=1e-6)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-5)


def test_ntm_response_shapes_are_the_documented_ones(ntm: Client) -> None:
    body = formats.encode_ntm_input(QUERY[:2], media(CSV))
    doc = orjson.loads(ntm.post(body, CSV, JSON).data)
    assert list(doc) == ["predictions"] and list(doc["predictions"][0]) == ["topic_weights"]
    lines = ntm.post(body, CSV, JSONL).data.splitlines()
    assert len(lines) == 2 and list(orjson.loads(lines[0])) == ["topic_weights"]
    records = list(recordio.read_records(ntm.post(body, CSV, RECORDIO).data))
    assert len(records) == 2 and list(records[0].label) == ["topic_weights"]
    assert len(records[0].features) == 0


@pytest.mark.parametrize("accept", [None, "", "*/*", "*/*; q=0.5"])
def test_a_missing_or_wildcard_accept_means_the_default(trained: Path, accept: str | None) -> None:
    body = formats.encode_ntm_input(QUERY[:1], media(CSV))
    plain = Client(create_app("ntm", trained / "ntm"))
    assert plain.post(body, CSV, accept).content_type == JSON
    configured = Client(create_app("ntm", trained / "ntm", default_accept=JSONL))
    response = configured.post(body, CSV, accept)
    assert response.status_code == 200 and response.content_type == JSONL


def test_ntm_refusals(ntm: Client, trained: Path) -> None:
    csv_row = formats.encode_ntm_input(QUERY[:1], media(CSV))
    assert RECORDIO in error_of(ntm.post(csv_row, CSV, CSV), 406)  # NTM writes no CSV
    error_of(ntm.post(csv_row, CSV, "image/png"), 406)
    assert "is not read by stage ntm" in error_of(ntm.post(b"hello", "text/plain"), 415)
    error_of(ntm.post(csv_row, None), 415)
    error_of(ntm.post(csv_row, "text/csv; charset=latin-1"), 415)
    wrong_width = b",".join([b"1"] * (VOCAB_SIZE - 1)) + b"\n"
    assert str(VOCAB_SIZE) in error_of(ntm.post(wrong_width, CSV), 422)
    error_of(ntm.post(orjson.dumps({"instances": [{"features": [1, 2]}]}), JSON), 422)
    sparse = {"instances": [{"data": {"features": {"keys": [0], "shape": [7], "values": [1]}}}]}
    error_of(ntm.post(orjson.dumps(sparse), JSON), 422)
    negative = b",".join([b"-1"] * VOCAB_SIZE) + b"\n"
    assert "negative" in error_of(ntm.post(negative, CSV), 422)
    error_of(ntm.post(b"", CSV), 400)
    error_of(ntm.post(b"{not json", JSON), 400)
    error_of(ntm.post(b"\x00\x01\x02\x03garbage", RECORDIO), 400)
    small = Client(create_app("ntm", trained / "ntm", max_request_bytes=1024))
    error_of(small.post(csv_row * (1024 // len(csv_row) + 2), CSV), 413)
    # the NTM's own answer is not a request
    answer = ntm.post(csv_row, CSV, JSON).data
    error_of(ntm.post(answer, JSON), 422)


# --- k-NN --------------------------------------------------------------------------------------


def knn_requests(M: np.ndarray) -> list[tuple[str, bytes]]:
    return [(t, formats.encode_knn_input(M, media(t))) for t in (CSV, JSON, JSONL, RECORDIO)]


@pytest.mark.parametrize("content_type", [CSV, CSV + "; label_size=0", JSON, JSONL, RECORDIO])
@pytest.mark.parametrize("accept", [JSON, JSONL, RECORDIO])
def test_knn_reads_every_request_format_and_answers_verbose_on_request(
    knn: Client, trained: Path, expected_topics: np.ndarray, content_type: str, accept: str
) -> None:
    body = formats.encode_knn_input(expected_topics, media(content_type))
    predicted, labels, distances = knn_query(trained / "knn", expected_topics)
    response = knn.post(body, content_type, accept + "; verbose=true")
    assert response.status_code == 200, response.data[:300]
    assert response.content_type == accept  # the private verbose parameter is not sent on
    rows = formats.decode_knn_output(response.data, media(accept))
    assert len(rows) == len(expected_topics)
    for (lab, dist), want_lab, want_dist in zip(rows, labels, distances, strict=True):
        np.testing.assert_array_equal(lab, want_lab)
        np.testing.assert_allclose(dist, want_dist, atol=1e-6)
        assert (np.diff(dist) >= 0).all() and len(lab) == 5
    terse = knn.post(body, content_type, accept)
    assert terse.status_code == 200
    if accept == RECORDIO:
        records = list(recordio.read_records(terse.data))
        assert [list(r.label) for r in records] == [["predicted_label"]] * len(records)
        got = [r.label["predicted_label"].float32_tensor.values[0] for r in records]
    else:
        objs = (
            orjson.loads(terse.data)["predictions"]
            if accept == JSON
            else [orjson.loads(line) for line in terse.data.splitlines()]
        )
        assert all(list(o) == ["predicted_label"] for o in objs)
        got = [o["predicted_label"] for o in objs]
    np.testing.assert_array_equal(got, predicted)


def test_knn_verbose_by_default_accept(trained: Path, expected_topics: np.ndarray) -> None:
    app = create_app("knn", trained / "knn", default_accept=JSON + "; verbose=true")
    body = formats.encode_knn_input(expected_topics[:1], media(CSV))
    for accept in (None, "*/*"):
        response = Client(app).post(body, CSV, accept)
        assert response.content_type == JSON
        assert set(orjson.loads(response.data)["predictions"][0]) == {
            "predicted_label",
            "labels",
            "distances",
        }


def test_knn_refuses_ntm_output_in_every_format(ntm: Client, knn: Client) -> None:
    body = formats.encode_ntm_input(QUERY[:2], media(CSV))
    for fmt in (JSON, JSONL, RECORDIO):
        ntm_answer = ntm.post(body, CSV, fmt)
        assert ntm_answer.status_code == 200
        message = error_of(knn.post(ntm_answer.data, fmt), 422)
        assert "topic_weights" in message or "NTM" in message


def test_knn_refusals(knn: Client, expected_topics: np.ndarray) -> None:
    M = expected_topics[:2]
    wrong = np.hstack([M, M])
    for content_type, body in knn_requests(wrong):
        assert str(NUM_TOPICS) in error_of(knn.post(body, content_type), 422)
    labelled = formats.encode_knn_input(M, media(CSV))
    error_of(knn.post(labelled, CSV + "; label_size=1"), 422)
    error_of(knn.post(labelled, "application/x-npy"), 415)
    error_of(knn.post(labelled, CSV, CSV), 406)
    error_of(knn.post(b"", CSV), 400)
    error_of(knn.post(b"1,2,nope,4\n", CSV), 400)


def test_ping_execution_parameters_and_unknown_paths(knn: Client, ntm: Client) -> None:
    for client, role in ((ntm, "ntm"), (knn, "knn")):
        ping = client.client.get("/ping")
        assert ping.status_code == 200 and ping.content_type == JSON
        doc = orjson.loads(ping.data)
        assert doc["standin"] == role and "not AWS code" in doc["notice"]
        params = orjson.loads(client.client.get("/execution-parameters").data)
        assert params["BatchStrategy"] == "MULTI_RECORD"
        error_of(client.client.get("/nope"), 404)
        error_of(client.client.get("/invocations"), 405)


# --- real gunicorn -----------------------------------------------------------------------------


def test_gunicorn_pipeline_ntm_adapter_knn(trained: Path, standin_factory: Any) -> None:
    """NTM → (what topics-to-knn does) → k-NN over HTTP, two workers each, then SIGTERM."""
    ntm_server = standin_factory("ntm", trained / "ntm")
    knn_server = standin_factory(
        "knn", trained / "knn", env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": JSON + ";verbose=true"}
    )
    counts, groups = planted_counts(per_group=3, seed=11)
    topics = ntm_server.post(formats.encode_ntm_input(counts, media(RECORDIO)), RECORDIO, "*/*")
    assert topics.status_code == 200 and topics.headers["Content-Type"] == JSON
    W = formats.decode_ntm_output(topics.content, media(JSON), NUM_TOPICS)
    direct = knn_server.post(topics.content, JSON)
    assert direct.status_code == 422  # NTM's output straight into k-NN is refused
    answer = knn_server.post(formats.encode_knn_input(W, media(CSV)), CSV)
    assert answer.status_code == 200, answer.text
    rows = formats.decode_knn_output(answer.content, media(answer.headers["Content-Type"]))
    train_groups = planted_counts()[1]
    hits = [np.mean(train_groups[lab] == g) for (lab, _), g in zip(rows, groups, strict=True)]
    assert np.mean(hits) >= 0.9
    for server in (ntm_server, knn_server):
        assert server.stop() == 0


def test_settings_are_servings(trained: Path) -> None:
    """The stand-ins read serving's settings: /execution-parameters follows MaxPayloadInMB and the
    workers (it once always said 6), the body limit follows the payload, SAGEMAKER_BATCH is
    ignored as the built-ins ignore it."""
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
           "SAGEMAKER_BATCH": "true", "STANDIN_HOST": "127.0.0.9"}
    settings = standin_settings(env)
    assert (settings.batch, settings.host, settings.workers) == (False, "127.0.0.9", 3)
    assert settings.max_request_bytes == 20 * 1024 * 1024
    app = application(load_stage("knn", trained / "knn", env), settings)
    params = orjson.loads(app.test_client().get("/execution-parameters").data)
    assert params == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD",
                      "MaxPayloadInMB": 20}
    assert standin_settings({}).workers == 2
