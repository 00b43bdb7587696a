"""Batch-transform behaviour of the HTTP layer (``SAGEMAKER_BATCH=true``), in process.

What SageMaker does with the answers: with ``SplitType=Line`` and ``AssembleWith=Line`` it appends
a newline after each response, so an answer must hold exactly one line per record and must not end
with a newline; MultiRecord packs as many records as fit in ``MaxPayloadInMB`` into one request.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from serving import recordio
from serving.app import JSON_LIST_KEYS, Server, create_app, execution_parameters
from serving.artifact import Model
from serving.config import Settings
from serving.errors import PayloadTooLarge
from serving.mediatypes import RECORDIO

DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer",
        "",
        "God and the church, faith and prayer",
        "render the polygon texture with shading"]
TEXT_TYPES = ["text/plain", "application/jsonlines", "text/csv", "application/json"]


def _body(content_type: str, docs: list[str]) -> bytes:
    if content_type == "text/plain":
        return "\n".join(docs).encode() + b"\n"
    if content_type == "application/jsonlines":
        return b"\n".join(orjson.dumps({"text": d}) for d in docs) + b"\n"
    if content_type == "application/json":
        return orjson.dumps({"instances": docs})
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([d] for d in docs)
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Model:
    return Model.load(tiny_model_dir)


def _ntm_docs(model: Model) -> list[str]:
    """DOCS with a word of the NTM vocabulary (ntm-features answers 422 for the others)."""
    counts = model.featurizer.transform(DOCS).getnnz(axis=1)
    docs = [d for d, n in zip(DOCS, counts, strict=True) if n]
    assert len(docs) >= 2
    return docs


def _client(model: Model, stage: str = "classify", **settings: Any) -> Any:
    base = Settings(stage=stage, model_dir="unused", batch=True, workers=2)
    server = Server(model, base.replace(**settings))
    server.warm_up()
    return create_app(server).test_client()


def _answer(client: Any, body: bytes, content_type: str, accept: str) -> bytes:
    response = client.post("/invocations", data=body,
                           headers={"Content-Type": content_type, "Accept": accept})
    assert response.status_code == 200, response.data
    return response.data


@pytest.mark.parametrize("accept", ["application/jsonlines", "text/csv", "application/json"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonlines", "text/csv"])
def test_one_line_per_record_and_no_final_newline(model: Model, content_type: str,
                                                  accept: str) -> None:
    """N records in (blank ones included) → exactly N lines out, no final newline; the same
    answers, line for line, whether the records come together (MultiRecord), one per request
    (SingleRecord) or in chunks smaller than the request."""
    body = _body(content_type, DOCS)
    multi = _answer(_client(model), body, content_type, accept)
    assert not multi.endswith(b"\n")
    lines = multi.split(b"\n")
    assert len(lines) == len(DOCS)
    single = [_answer(_client(model), _body(content_type, [d]), content_type, accept)
              for d in DOCS]
    assert lines == single
    chunked = _answer(_client(model, batch_chunk_records=2), body, content_type, accept)
    assert chunked == multi
    if accept == "application/json":  # each line is what a one-record request answers
        for line in lines:
            assert len(orjson.loads(line)["predictions"]) == 1


def test_json_lines_framing_matches_realtime_answers(model: Model) -> None:
    """Batch lines carry the same predictions as a real-time answer to the same records."""
    body = _body("application/jsonlines", DOCS)
    realtime = Server(model, Settings(model_dir="unused"))
    out, _, _ = realtime.invoke(body, "application/jsonlines", "application/json", None)
    expected = orjson.loads(out)["predictions"]
    batch = _answer(_client(model), body, "application/jsonlines", "application/json")
    assert [orjson.loads(line)["predictions"][0] for line in batch.split(b"\n")] == expected


@pytest.mark.parametrize(("stage", "accept"), [
    (stage, accept) for stage in ("ntm-features", "classify")
    for accept in ("application/json", "application/json; sparse=true", "application/jsonlines",
                   "text/csv") if not (stage == "classify" and "sparse" in accept)])
def test_every_stage_json_wrapping_equals_single_record_json(model: Model, stage: str,
                                                             accept: str) -> None:
    client = _client(model, stage)
    docs = _ntm_docs(model) if stage == "ntm-features" else DOCS
    lines = _answer(client, _body("text/plain", docs), "text/plain", accept).split(b"\n")
    assert len(lines) == len(docs)
    if accept.startswith("application/json;") or accept == "application/json":
        realtime = Server(model, Settings(stage=stage, model_dir="unused"))
        for doc, line in zip(docs, lines, strict=True):
            one, _, _ = realtime.invoke(orjson.dumps([doc]), "application/json", accept, None)
            assert orjson.loads(line) == orjson.loads(one)
            assert list(orjson.loads(line)) == [JSON_LIST_KEYS[stage]]


def test_topics_and_recommend_stages_frame_lines(model: Model) -> None:
    k = model.num_topics
    topics = b"\n".join(orjson.dumps({"topic_weights": [1.0 / k] * k}) for _ in range(4))
    for accept in ("text/csv", "application/jsonlines", "application/json"):
        out = _answer(_client(model, "topics-to-knn"), topics, "application/jsonlines", accept)
        assert len(out.split(b"\n")) == 4 and not out.endswith(b"\n")
    neighbours = b"\n".join(orjson.dumps({"labels": [0, 1], "distances": [0.1, 0.2]})
                            for _ in range(3))
    for accept in ("application/jsonlines", "application/json"):
        out = _answer(_client(model, "recommend"), neighbours, "application/jsonlines", accept)
        assert len(out.split(b"\n")) == 3 and not out.endswith(b"\n")


def test_recordio_answer_is_unchanged_by_chunking(model: Model) -> None:
    body = _body("text/plain", _ntm_docs(model))
    whole = _answer(_client(model, "ntm-features"), body, "text/plain", RECORDIO)
    chunked = _answer(_client(model, "ntm-features", batch_chunk_records=2), body,
                      "text/plain", RECORDIO)
    assert whole == chunked
    assert len(list(recordio.read_records(whole))) == len(_ntm_docs(model))


def test_many_short_lines_are_answered_in_batch_mode(model: Model) -> None:
    """SageMaker packs MultiRecord requests up to MaxPayloadInMB: 18,846 short lines (about
    650 KB) in one request are answered, one line each."""
    lines = [f"short line {i} about the car engine" for i in range(18_846)]
    body = ("\n".join(lines) + "\n").encode()
    assert 600_000 < len(body) < 800_000
    server = Server(model, Settings.from_env({"SAGEMAKER_BATCH": "true", "SM_MODEL_DIR": "x"}))
    server.warm_up()
    out = _answer(create_app(server).test_client(), body, "text/plain", "text/csv")
    assert len(out.split(b"\n")) == len(lines)


def test_a_full_payload_of_lines_is_answered_in_json_lines(model: Model) -> None:
    """6 MB of ~110-character lines (55,000 records) answer ~2x their size in JSON Lines: the
    batch default for the answer is 4x the request limit (the real-time 6 MB would refuse)."""
    line = "the shuttle launch reached orbit and the engine of my car needs new brake pads " \
           "says the dealer today"
    count = 6 * 1024 * 1024 // (len(line) + 1) - 10
    body = ((line + "\n") * count).encode()
    settings = Settings.from_env({"SAGEMAKER_BATCH": "true", "SM_MODEL_DIR": "x"})
    assert settings.max_response_bytes == 4 * settings.max_request_bytes
    assert Settings.from_env({"SM_MODEL_DIR": "x"}).max_response_bytes == 6 * 1024 * 1024
    server = Server(model, settings)
    out, _media, records = server.invoke(body, "text/plain", "application/jsonlines", None)
    assert records == count and out.count(b"\n") == count - 1 and len(out) > len(body)


def test_a_batch_answer_over_the_limit_stops_when_it_gets_there(model: Model) -> None:
    """Each chunk's estimate sees only its records; the answer is refused once its parts pass
    the limit, not after the whole of it was built (2.45 M records of 'ab' took 20 s and
    2.4 GB before)."""
    settings = Settings.from_env({"SAGEMAKER_BATCH": "true", "SM_MODEL_DIR": "x",
                                  "SERVING_MAX_RESPONSE_BYTES": str(64 * 1024),
                                  "SERVING_BATCH_CHUNK_RECORDS": "100"})
    server = Server(model, settings)
    calls = []
    run = server.stage.run
    server.stage = server.stage.__class__(**{**server.stage.__dict__, "run": lambda r, o: (
        calls.append(len(r)), run(r, o))[1]})
    with pytest.raises(PayloadTooLarge, match=r"after \d+ of the 100000 records; accept text/csv"):
        server.invoke(b"ab\n" * 100_000, "text/plain", "application/jsonlines", None)
    assert sum(calls) < 2_000  # ~64 KB of answers, not 100,000 records


def test_realtime_mode_keeps_the_record_limit(model: Model) -> None:
    settings = Settings.from_env({"SM_MODEL_DIR": "unused"})
    assert settings.max_records == 10_000
    server = Server(model, settings)
    server.warm_up()
    client = create_app(server).test_client()
    body = b"\n".join(orjson.dumps({"text": "car"}) for _ in range(10_001))
    response = client.post("/invocations", data=body,
                           headers={"Content-Type": "application/jsonlines"})
    assert response.status_code == 413


def test_batch_settings_take_the_record_limit_from_the_payload() -> None:
    batch = Settings.from_env({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"})
    assert batch.max_request_bytes == 20 * 1024 * 1024
    assert batch.max_records == batch.max_request_bytes  # every record is at least its newline
    assert batch.max_doc_chars == batch.max_request_bytes
    # real-time too: any document that fits in a body is classified (issue 9)
    assert Settings.from_env({}).max_doc_chars == 6 * 1024 * 1024
    assert batch.batch_chunk_records == 10_000
    explicit = Settings.from_env({"SAGEMAKER_BATCH": "true", "SERVING_MAX_RECORDS": "50"})
    assert explicit.max_records == 50


@pytest.mark.parametrize(("workers", "payload", "expected"),
                         [(1, 6, 1), (2, 6, 2), (36, 6, 16), (64, 1, 64), (8, 100, 1),
                          (8, 20, 5), (4, 30, 3)])
def test_execution_parameters_respect_the_transform_rule(workers: int, payload: int,
                                                         expected: int) -> None:
    settings = Settings(workers=workers, max_payload_mb=payload)
    params = execution_parameters(settings)
    assert params == {"MaxConcurrentTransforms": expected, "BatchStrategy": "MULTI_RECORD",
                      "MaxPayloadInMB": payload}
    assert params["MaxConcurrentTransforms"] * params["MaxPayloadInMB"] <= 100


def test_execution_parameters_endpoint(model: Model) -> None:
    client = _client(model, workers=36, max_payload_mb=6)
    assert client.get("/execution-parameters").json == {
        "MaxConcurrentTransforms": 16, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
