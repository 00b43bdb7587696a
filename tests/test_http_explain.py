"""``explain=N`` over real HTTP (nginx + gunicorn on 127.0.0.1): JSON, JSON Lines, CSV refused,
bad values, batch mode, and the other stages refusing it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from serving.stages import WARMUP_TEXT
from tests.conftest import RunningServer

DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer",
        "god, faith and the church"]
ATTR = "X-Amzn-SageMaker-Custom-Attributes"
BODIES = {
    "application/json": orjson.dumps({"instances": DOCS}),
    "application/jsonlines": b"".join(orjson.dumps({"text": d}) + b"\n" for d in DOCS),
    "text/csv": "".join(f'"{d}"\n' for d in DOCS).encode(),
}


@pytest.fixture(scope="module")
def classify(tiny_model_dir: Path, server_factory) -> RunningServer:
    return server_factory(tiny_model_dir, "classify", workers=1)


def _rows(response) -> list[dict]:
    assert response.status_code == 200, response.text
    if response.headers["Content-Type"].startswith("application/jsonlines"):
        return [orjson.loads(line) for line in response.content.splitlines()]
    return orjson.loads(response.content)["predictions"]


def _check_explained(explained: list[dict], plain: list[dict], n: int) -> None:
    assert len(explained) == len(plain)
    for got, want in zip(explained, plain, strict=True):
        assert {k: got[k] for k in want} == want  # the prediction itself is unchanged
        explanation = got["explanation"]
        assert explanation["versus"] == want["top_k"][1]["label"]
        weights = [t["weight"] for t in explanation["terms"]]
        assert 1 <= len(weights) <= n and all(w > 0 for w in weights)
        assert weights == sorted(weights, reverse=True)
        assert all(isinstance(t["term"], str) and t["term"] for t in explanation["terms"])


@pytest.mark.parametrize("content_type", list(BODIES))
@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", None])
def test_explain_json_and_jsonlines(classify: RunningServer, content_type: str,
                                    accept: str | None) -> None:
    body = BODIES[content_type]
    plain = _rows(classify.post(body, content_type, accept))
    response = classify.post(body, content_type, accept, **{ATTR: "trace=7; explain=2"})
    _check_explained(_rows(response), plain, 2)
    assert ATTR not in response.headers  # not echoed (nothing to return; see serving/options)


def test_explained_terms_are_the_documents_words(classify: RunningServer) -> None:
    rows = _rows(classify.post(DOCS[0], "text/plain", **{ATTR: "explain=50"}))
    words = set(DOCS[0].lower().replace(",", " ").replace(".", " ").split())
    terms = [t["term"] for t in rows[0]["explanation"]["terms"]]
    assert terms and all(set(term.split(" ")) <= words for term in terms)
    assert rows[0]["label"] == "sci.space" and "orbit" in terms


def test_explain_with_top_k(classify: RunningServer) -> None:
    rows = _rows(classify.post(DOCS[1], "text/plain", **{ATTR: "top_k=1,explain=3"}))
    assert len(rows[0]["top_k"]) == 1
    assert rows[0]["explanation"]["versus"] != rows[0]["label"]


@pytest.mark.parametrize("accept", ["text/csv", "text/csv; charset=utf-8",
                                    "text/html;q=0.5, text/csv"])
def test_csv_cannot_carry_explanations(classify: RunningServer, accept: str) -> None:
    response = classify.post(BODIES["text/csv"], "text/csv", accept, **{ATTR: "explain=3"})
    assert response.status_code == 406
    error = response.json()
    assert error["error"] == "not_acceptable" and "text/csv cannot carry" in error["message"]
    assert error["request_id"] == response.headers["X-Request-Id"]
    assert classify.post(BODIES["text/csv"], "text/csv", accept).status_code == 200


@pytest.mark.parametrize("value", ["0", "51", "", "five", "-1", "2.0", "explain=2,explain=3"])
def test_bad_values(classify: RunningServer, value: str) -> None:
    header = value if value.startswith("explain") else f"explain={value}"
    response = classify.post(DOCS[0], "text/plain", **{ATTR: header})
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "bad_request" and "custom attribute explain" in error["message"]
    assert DOCS[0] not in response.text


def test_bare_explain_is_refused(classify: RunningServer) -> None:
    response = classify.post(DOCS[0], "text/plain", **{ATTR: "explain"})
    assert response.status_code == 400 and "needs a value" in response.json()["message"]


def test_batch_mode_one_line_per_record(tiny_model_dir: Path, server_factory) -> None:
    server = server_factory(tiny_model_dir, "classify", workers=1,
                            env={"SAGEMAKER_BATCH": "true", "SERVING_BATCH_CHUNK_RECORDS": "2"})
    body = "\n".join([*DOCS, "", *DOCS]) + "\n"  # a blank line is a record too
    for accept in ("application/json", "application/jsonlines"):
        response = server.post(body, "text/plain", accept, **{ATTR: "explain=4"})
        assert response.status_code == 200, response.text
        lines = response.content.split(b"\n")
        assert len(lines) == 7 and not response.content.endswith(b"\n")
        for line in lines:
            doc = orjson.loads(line)
            prediction = doc["predictions"][0] if accept == "application/json" else doc
            assert len(prediction["explanation"]["terms"]) <= 4
    blank = orjson.loads(server.post(body, "text/plain", "application/jsonlines",
                                     **{ATTR: "explain=4"}).content.split(b"\n")[3])
    assert blank["explanation"]["terms"] == []


def _other_stage_bodies(tiny_model_dir: Path) -> dict[str, tuple[bytes, str]]:
    from serving.artifact import Model

    k = Model.load(tiny_model_dir).num_topics
    return {
        "ntm-features": (WARMUP_TEXT.encode(), "text/plain"),
        "topics-to-knn": (orjson.dumps({"predictions": [{"topic_weights": [1.0] * k}]}),
                          "application/json"),
        "recommend": (orjson.dumps({"predictions": [{"labels": [0, 1], "distances": [0.1, 0.2]}]}),
                      "application/json"),
    }


@pytest.mark.parametrize("stage", ["ntm-features", "topics-to-knn", "recommend"])
def test_other_stages_refuse_explain(tiny_model_dir: Path, server_factory, stage: str) -> None:
    server = server_factory(tiny_model_dir, stage, workers=1)
    body, content_type = _other_stage_bodies(tiny_model_dir)[stage]
    assert server.post(body, content_type).status_code == 200
    response = server.post(body, content_type, **{ATTR: "explain=3"})
    assert response.status_code == 400
    assert "classify stage only" in response.json()["message"]
    assert server.post(body, content_type, **{ATTR: "other=explain"}).status_code == 200
    server.stop()


def test_answer_limit_counts_the_terms(tiny_model_dir: Path, server_factory) -> None:
    server = server_factory(tiny_model_dir, "classify", workers=1,
                            env={"SERVING_MAX_RESPONSE_BYTES": "4000"})
    body = orjson.dumps({"instances": DOCS * 4})
    assert server.post(body, "application/json").status_code == 200
    refused = server.post(body, "application/json", **{ATTR: "explain=50"})
    assert refused.status_code == 413  # the term count (a lower bound) or the built answer
    assert any(words in refused.json()["message"]
               for words in ("custom attribute explain", "over the response limit"))
    assert server.post(DOCS[0], "text/plain", **{ATTR: "explain=50"}).status_code == 200
    server.stop()
