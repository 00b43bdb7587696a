"""Contract tests over real HTTP (gunicorn on 127.0.0.1): every stage x content type x Accept."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import orjson
import pytest

from serving import recordio
from serving.artifact import Model
from tests.conftest import RunningServer

DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer",
        'A "quoted" text, with commas\nand a newline']
TEXT_BODIES = {
    "text/csv": "".join(f'"{d.replace(chr(34), chr(34) * 2)}"\r\n' for d in DOCS).encode(),
    "application/json": orjson.dumps({"instances": DOCS}),
    "application/jsonlines": b"".join(orjson.dumps(d) + b"\n" for d in DOCS),
}
JSON_VARIANTS = [orjson.dumps({"instances": [{"text": d} for d in DOCS]}), orjson.dumps(DOCS)]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Model:
    return Model.load(tiny_model_dir)


@pytest.fixture(scope="module")
def servers(tiny_model_dir: Path, server_factory) -> dict[str, RunningServer]:
    return {stage: server_factory(tiny_model_dir, stage, workers=1)
            for stage in ("classify", "ntm-features", "topics-to-knn", "recommend")}


def _predictions(response, n: int) -> list[dict]:
    media = response.headers["Content-Type"]
    if media.startswith("application/jsonlines"):
        rows = [orjson.loads(line) for line in response.content.splitlines()]
    else:
        rows = orjson.loads(response.content)["predictions"]
    assert len(rows) == n
    return rows


@pytest.mark.parametrize("content_type", [*TEXT_BODIES, "text/csv; charset=utf-8",
                                          "application/json; charset=UTF-8"])
@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "text/csv",
                                    "*/*", None, "text/html;q=0.5, text/csv"])
def test_classify(servers, content_type: str, accept: str | None) -> None:
    body = TEXT_BODIES[content_type.split(";")[0]]
    response = servers["classify"].post(body, content_type, accept)
    assert response.status_code == 200, response.text
    expected_type = {"text/html;q=0.5, text/csv": "text/csv"}.get(accept or "", accept)
    if accept in (None, "*/*"):
        expected_type = "application/json"
    assert response.headers["Content-Type"].split(";")[0] == expected_type
    if expected_type == "text/csv":
        rows = list(csv.reader(io.StringIO(response.text)))
        assert len(rows) == 3 and all(0 < float(p) <= 1 for _, p in rows)
        labels = [label for label, _ in rows]
    else:
        preds = _predictions(response, 3)
        labels = [p["label"] for p in preds]
        assert all(len(p["top_k"]) == 3 and p["top_k"][0]["label"] == p["label"] for p in preds)
    assert labels[:2] == ["sci.space", "rec.autos"]


@pytest.mark.parametrize("body", JSON_VARIANTS)
def test_classify_json_forms_and_plain_text(servers, body: bytes) -> None:
    assert len(_predictions(servers["classify"].post(body, "application/json"), 3)) == 3
    one = servers["classify"].post(orjson.dumps(DOCS[0]), "application/json")
    assert _predictions(one, 1)[0]["label"] == "sci.space"
    plain = servers["classify"].post(DOCS[1], "text/plain; charset=us-ascii")
    assert _predictions(plain, 1)[0]["label"] == "rec.autos"


def test_classify_top_k_attribute(servers) -> None:
    response = servers["classify"].post(DOCS[0], "text/plain", **{
        "X-Amzn-SageMaker-Custom-Attributes": "trace=1, top_k=2"})
    assert len(_predictions(response, 1)[0]["top_k"]) == 2
    bad = servers["classify"].post(DOCS[0], "text/plain", **{
        "X-Amzn-SageMaker-Custom-Attributes": "top_k=lots"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


@pytest.mark.parametrize("content_type", list(TEXT_BODIES))
@pytest.mark.parametrize("accept", ["application/json", "application/json; sparse=true",
                                    "application/jsonlines", "text/csv",
                                    "application/x-recordio-protobuf"])
def test_ntm_features(servers, model: Model, content_type: str, accept: str) -> None:
    docs = DOCS[:2]  # DOCS[2] has no word of the NTM vocabulary: test_ntm_features_empty_is_422
    body = {"text/csv": "".join(f'"{d}"\r\n' for d in docs).encode(),
            "application/json": orjson.dumps({"instances": docs}),
            "application/jsonlines": b"".join(orjson.dumps(d) + b"\n" for d in docs)}
    response = servers["ntm-features"].post(body[content_type], content_type, accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == accept.split(";")[0]
    expected = model.featurizer.transform(docs).toarray()
    dim = model.featurizer.feature_dim
    if accept.startswith("application/x-recordio"):
        got = recordio.decode_matrix(response.content, n_cols=dim)
        got = got.toarray() if hasattr(got, "toarray") else got
    elif accept == "text/csv":
        got = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
    else:
        rows = _instances(response)
        got = np.zeros((len(rows), dim))
        for i, row in enumerate(rows):
            if "features" in row:
                got[i] = row["features"]
            else:
                sparse = row["data"]["features"]
                assert sparse["shape"] == [dim]
                got[i, sparse["keys"]] = sparse["values"]
    np.testing.assert_array_equal(got, expected)


def _instances(response) -> list[dict]:
    if response.headers["Content-Type"] == "application/jsonlines":
        return [orjson.loads(line) for line in response.content.splitlines()]
    return orjson.loads(response.content)["instances"]


def _ntm_output(media: str, W: np.ndarray) -> bytes:
    if media == "application/json":
        return orjson.dumps({"predictions": [{"topic_weights": w.tolist()} for w in W]})
    if media == "application/jsonlines":
        return b"".join(orjson.dumps({"topic_weights": w.tolist()}) + b"\n" for w in W)
    return recordio.encode_dense_rows(W.astype(np.float32), key="topic_weights", where="label")


@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines",
                                          "application/x-recordio-protobuf"])
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines",
                                    "application/x-recordio-protobuf", None])
def test_topics_to_knn(servers, model: Model, content_type: str, accept: str | None) -> None:
    W = np.random.default_rng(0).dirichlet(np.ones(model.num_topics), size=4).astype(np.float32)
    response = servers["topics-to-knn"].post(_ntm_output(content_type, W), content_type, accept)
    assert response.status_code == 200, response.text
    media = response.headers["Content-Type"]
    assert media == (accept or "text/csv")
    if media == "text/csv":
        got = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
    elif media == "application/x-recordio-protobuf":
        got = np.vstack(recordio.decode_tensor_rows(response.content, "features", "values"))
    else:
        got = np.asarray([row["features"] for row in _instances(response)])
    unit = W / np.linalg.norm(W, axis=1, keepdims=True)  # k-NN sees unit vectors
    np.testing.assert_allclose(got, unit, rtol=1e-6)


def test_ntm_features_empty_is_422(servers, model: Model) -> None:
    """A text without a word of the NTM vocabulary would be an all-zero row for NTM."""
    assert model.featurizer.transform([DOCS[2]]).nnz == 0
    response = servers["ntm-features"].post(TEXT_BODIES["application/json"], "application/json")
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("record 3: no word of the topic model")


def test_topics_to_knn_wrong_length_is_422(servers, model: Model) -> None:
    body = orjson.dumps({"predictions": [{"topic_weights": [0.5, 0.5]}]})
    response = servers["topics-to-knn"].post(body, "application/json")
    assert response.status_code == 422 and response.json()["error"] == "unprocessable_entity"
    assert f"expected {model.num_topics}" in response.json()["message"]


def _knn_output(media: str, labels: np.ndarray, distances: np.ndarray) -> bytes:
    rows = [{"predicted_label": float(lab[0]), "labels": lab.tolist(),
             "distances": dist.tolist()} for lab, dist in zip(labels, distances, strict=True)]
    if media == "application/json":
        return orjson.dumps({"predictions": rows})
    if media == "application/jsonlines":
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)
    from serving.formats import encode_knn_output
    from serving.mediatypes import parse_content_type

    return encode_knn_output(labels[:, 0], labels, distances,
                             parse_content_type("application/x-recordio-protobuf; verbose=true"))


@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines",
                                          "application/x-recordio-protobuf"])
@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", None])
def test_recommend(servers, model: Model, content_type: str, accept: str | None) -> None:
    labels = np.array([[3, 1, 7], [0, 2, 5]], dtype=np.float32)
    distances = np.array([[0.3, 0.1, 0.2], [0.05, 0.5, 0.6]], dtype=np.float32)
    response = servers["recommend"].post(_knn_output(content_type, labels, distances),
                                         content_type, accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == (accept or "application/json")
    if accept == "application/jsonlines":
        recs = [orjson.loads(line)["recommendations"] for line in response.content.splitlines()]
    else:
        recs = [p["recommendations"] for p in orjson.loads(response.content)["predictions"]]
    assert [r["id"] for r in recs[0]] == [model.catalog.ids[i] for i in (1, 7, 3)]
    assert recs[1][0] == {"id": model.catalog.ids[0], "title": model.catalog.titles[0],
                          "newsgroup": model.catalog.newsgroups[0],
                          "score": 1 - 0.05 ** 2 / 2}  # L2 over unit vectors: 1 - d**2/2


def test_recommend_needs_verbose_and_known_labels(servers, model: Model) -> None:
    plain = servers["recommend"].post(orjson.dumps({"predictions": [{"predicted_label": 1.0}]}),
                                      "application/json")
    assert plain.status_code == 422 and "verbose=true" in plain.json()["message"]
    far = _knn_output("application/json", np.array([[len(model.catalog) + 5]]), np.array([[0.1]]))
    response = servers["recommend"].post(far, "application/json")
    assert response.status_code == 422 and "outside the catalog" in response.json()["message"]


@pytest.mark.parametrize("stage", ["classify", "ntm-features", "topics-to-knn", "recommend"])
def test_errors_are_typed_json(servers, stage: str) -> None:
    server = servers[stage]
    cases = [
        (b"", "application/json", None, 400),
        (b"\xff\xfe\x00garbage", "application/json", None, 400),
        (b"{not json", "application/json", None, 400),
        (b"x", "image/png", None, 415),
        (b"x", "application/json; charset=latin-1", None, 415),
        (b'{"instances": ["a"]}', "application/json", "image/png", 406),
    ]
    for body, content_type, accept, status in cases:
        response = server.post(body, content_type, accept)
        assert response.status_code == status, (content_type, response.text)
        payload = response.json()
        assert set(payload) == {"error", "message", "request_id"}
        assert "Traceback" not in response.text
        assert response.headers["Content-Type"] == "application/json"


def test_csv_header_present_is_not_a_document(servers) -> None:
    """RFC 4180 ``header=present``: 6 documents under a header give 6 predictions, in order
    (the text is the ``text`` column); without the parameter there is no header row."""
    docs = [DOCS[i % 2] for i in range(6)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text"])
    writer.writerows([str(i), d] for i, d in enumerate(docs))
    with_header = servers["classify"].post(out.getvalue(), "text/csv; header=present",
                                           "application/jsonlines")
    assert with_header.status_code == 200, with_header.text
    bare = io.StringIO()
    csv.writer(bare).writerows([d] for d in docs)
    plain = servers["classify"].post(bare.getvalue(), "text/csv", "application/jsonlines")
    assert _predictions(with_header, 6) == _predictions(plain, 6)
    no_text = servers["classify"].post("id,body\n1,x\n", "text/csv; header=present")
    assert no_text.status_code == 400 and "text" in no_text.json()["message"]


def test_paths_methods_and_ping(servers) -> None:
    import requests

    url = servers["classify"].url
    assert requests.get(f"{url}/ping", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{url}/invocations", timeout=5).status_code == 405
    missing = requests.get(f"{url}/nope", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    params = requests.get(f"{url}/execution-parameters", timeout=5).json()
    assert params == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                      "MaxPayloadInMB": 6}


def test_inference_id_is_echoed(servers) -> None:
    response = servers["classify"].post(DOCS[0], "text/plain",
                                        **{"X-Amzn-SageMaker-Inference-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    error = servers["classify"].post(b"", "text/plain",
                                     **{"X-Amzn-SageMaker-Inference-Id": "abc-124"})
    assert error.json()["request_id"] == "abc-124"


def test_a_default_accept_the_stage_cannot_write_fails_at_start(tiny_model_dir: Path) -> None:
    from serving.app import Server
    from serving.config import Settings, SettingsError

    settings = Settings.from_env({"SERVING_STAGE": "recommend",
                                  "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    with pytest.raises(SettingsError, match="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/csv'"):
        Server(Model.load(tiny_model_dir), settings)
    verbose = Settings.from_env({"SERVING_STAGE": "classify",
                                 "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/jsonlines"})
    assert Server(Model.load(tiny_model_dir), verbose).default_accept == "application/jsonlines"


def _post_with_headers(server: RunningServer, headers: list[tuple[str, str]], body: bytes,
                       ) -> tuple[int, str | None, bytes]:
    """A POST /invocations with ``headers`` as given (a name may repeat): status, Content-Type
    and body of the answer."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/invocations")
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("stage", ["classify", "recommend"])
def test_accept_parameters_are_not_copied_into_the_answer(servers, model: Model,
                                                          stage: str) -> None:
    """Three Accept lines of ~7.9 KB holding one quoted parameter (gunicorn joins repeated
    headers): the answer's Content-Type once carried it whole, over nginx's buffer for an
    answer's head, and the client got a 502 for an answer the app had given."""
    body = (orjson.dumps({"predictions": [{"labels": [1.0], "distances": [0.1]}]})
            if stage == "recommend" else b"orbit shuttle")
    content_type = "application/json" if stage == "recommend" else "text/plain"
    x, y, z = "x" * 7900, "y" * 7900, "z" * 7900
    status, media, answer = _post_with_headers(servers[stage], [
        ("Content-Type", content_type), ("Accept", f'application/json; a="{x}'),
        ("Accept", y), ("Accept", f'{z}"')], body)
    assert (status, media) == (200, "application/json"), answer[:300]
    assert orjson.loads(answer)["predictions"]


@pytest.mark.parametrize(("accept", "status", "media"), [
    ("application/json; charset=UTF-8", 200, "application/json; charset=utf-8"),
    ("application/json; charset=utf-16", 406, None),
    ("text/csv; charset=latin-1, application/jsonlines;q=0.5", 200, "application/jsonlines"),
    ("text/csv; header=present", 406, None),
    ("text/csv; header=absent; foo=bar", 200, "text/csv; header=absent"),
    ('application/json; verbose=true; ext="a,b;c"', 200, "application/json"),
])
def test_answer_content_type_says_what_the_body_is(servers, accept: str, status: int,
                                                   media: str | None) -> None:
    response = servers["classify"].post(DOCS[0], "text/plain", accept)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["Content-Type"] == media
    else:
        assert response.json()["error"] == "not_acceptable"
        assert "Accept asks for" in response.json()["message"]


@pytest.mark.parametrize(("stage", "body"), [
    ("recommend", {"predictions": [{"labels": [True, 2], "distances": [0.1, 0.2]}]}),
    ("topics-to-knn", {"predictions": [{"topic_weights": [True]}]}),
])
def test_true_and_false_are_not_numbers(servers, model: Model, stage: str, body: dict) -> None:
    if stage == "topics-to-knn":  # the right width, so only the types are wrong
        body["predictions"][0]["topic_weights"] += [0.0] * (model.num_topics - 1)
    response = servers[stage].post(orjson.dumps(body), "application/json")
    assert response.status_code == 400, response.text
    assert "true or false" in response.json()["message"]


@pytest.mark.parametrize(("stage", "content_type", "body"), [
    ("topics-to-knn", "application/json", b'{"predictions": []}'),
    ("topics-to-knn", "application/jsonlines", b"\n\n"),
    ("recommend", "application/json", b'{"predictions": []}'),
    ("recommend", "application/jsonlines", b"\r\n"),
    ("classify", "application/json", b'{"instances": []}'),
    ("ntm-features", "application/json", b"[]"),
])
def test_a_request_of_no_records_is_400_on_every_stage(servers, stage: str, content_type: str,
                                                        body: bytes) -> None:
    response = servers[stage].post(body, content_type)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "holds no" in response.json()["message"]


def test_a_body_labelled_us_ascii_must_be_ascii(servers) -> None:
    ok = servers["classify"].post(b"plain ascii orbit", "text/plain; charset=US-ASCII")
    assert ok.status_code == 200
    wrong = servers["classify"].post("caf\u00e9 orbit".encode(), "text/plain; charset=us-ascii")
    assert wrong.status_code == 400 and "charset=us-ascii" in wrong.json()["message"]
    assert servers["classify"].post("caf\u00e9 orbit".encode(),
                                    "text/plain; charset=utf-8").status_code == 200
