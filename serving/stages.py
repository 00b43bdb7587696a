"""The four serving stages. Each decodes a body, runs the model part it owns, and encodes.

A stage is chosen once per deployment (``SERVING_STAGE``); the HTTP layer is the same for all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

# Only what every stage (and classify) needs; the NTM/k-NN formats (RecordIO-protobuf, .npy)
# are imported by the stages that read or write them, so a classify server never loads
# protobuf and its wire-format modules (a few MB less in the master, whose pages the workers
# share).
from serving import codecs, explain, vectors
from serving.artifact import Model
from serving.config import Settings
from serving.errors import PayloadTooLarge, UnprocessableEntity
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, TEXT_PLAIN, MediaType
from serving.options import Options

TEXT_INPUTS = codecs.TEXT_INPUT_TYPES
# One line: in batch mode (SAGEMAKER_BATCH=true) a text/plain body holds one document per line,
# and ntm-features refuses a document with no word of its vocabulary.
WARMUP_TEXT = (
    "Re: graphics card drivers. My new video card shows garbage on the screen after installing "
    "the windows driver. Any help with the vga mode settings?"
)


@dataclass
class Stage:
    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    natural_output: str
    decode: Callable[[bytes, MediaType], Any]
    run: Callable[[Any, Options], Any]
    encode: Callable[[Any, MediaType], bytes]
    warmup: tuple[bytes, str, str]  # body, content type, accept
    info: dict[str, Any] = field(default_factory=dict)  # added to GET /ping's {"status": "ok"}

    @staticmethod
    def count(records: Any) -> int:
        return records.shape[0] if hasattr(records, "shape") else len(records)


def _npy_out(settings: Settings) -> tuple[str, ...]:
    """application/x-npy as an answer type, last (it wins no Accept tie it did not win before).

    Not in batch mode: a batch answer is framed one line per record and one ``.npy`` array per
    request cannot be split into lines (SageMaker's AssembleWith=Line)."""
    from serving import npy

    return () if settings.batch else (npy.NPY,)


def _texts(settings: Settings) -> Callable[[bytes, MediaType], list[str]]:
    def decode(body: bytes, media: MediaType) -> list[str]:
        return codecs.decode_texts(body, media, max_records=settings.max_records,
                                   max_doc_chars=settings.max_doc_chars,
                                   lines_are_records=settings.batch)
    return decode


def classify_stage(model: Model, settings: Settings) -> Stage:
    classifier = model.classifier
    classes = classifier.classes

    # Smallest JSON entry: {"label":"","probability":0.0} plus the shortest class name.
    entry_bytes = 31 + min((len(c) for c in classes), default=0)
    # Explanations: {"versus":"","terms":[]} plus a class name, then {"term":"","weight":0.0}
    # and a two-letter term (the shortest the tokenizer keeps) per listed term.
    explain_bytes, term_bytes = 24 + min((len(c) for c in classes), default=0), 26
    explainer = explain.Explainer(classifier)  # index -> term names built here, in the master

    def run(texts: list[str], options: Options) -> tuple:
        k = min(options.top_k or settings.top_k, len(classes))
        least = len(texts) * ((k + 1) * entry_bytes + (explain_bytes if options.explain else 0))
        vectors.check_output_size(least, settings.max_response_bytes,
                                  "ask for fewer classes (custom attribute top_k), accept "
                                  "text/csv, or send fewer records per request")
        if options.explain:
            room = (settings.max_response_bytes - least) // term_bytes
            return explainer.top_k(texts, options.top_k or settings.top_k, options.explain, room)
        return classifier.top_k(texts, options.top_k or settings.top_k)

    def encode(result: tuple, media: MediaType) -> bytes:
        return codecs.encode_classify(classes, result[0], result[1], media, *result[2:])

    return Stage("classify", TEXT_INPUTS, codecs.CLASSIFY_OUTPUT_TYPES, JSON,
                 _texts(settings), run, encode, (WARMUP_TEXT.encode(), TEXT_PLAIN, JSON))


def ntm_features_stage(model: Model, settings: Settings) -> Stage:
    from serving import formats, npy

    featurizer = model.featurizer

    def run(texts: list[str], options: Options) -> Any:
        X = featurizer.transform(texts)
        empty = np.flatnonzero(np.diff(X.indptr) == 0)
        if empty.size:  # zeros would reach NTM, whose answer to them nobody knows
            numbers = ", ".join(str(i + 1) for i in empty[:10]) + (", ..." if empty.size > 10
                                                                   else "")
            raise UnprocessableEntity(
                f"record {numbers}: no word of the topic model's vocabulary, so no topics and "
                "nothing to recommend from")
        return X

    def encode(X: Any, media: MediaType) -> bytes:
        if media.type == npy.NPY:  # dense float32 counts, the SageMaker SDK's NumpyDeserializer
            vectors.check_output_size(4 * X.shape[0] * X.shape[1], settings.max_response_bytes,
                                      f"dense rows of {X.shape[1]} words are mostly zeros: "
                                      f"accept {RECORDIO}, or send fewer records per request")
            return npy.encode(X.toarray().astype(np.float32))
        return formats.encode_ntm_input(X, media, settings.max_response_bytes)

    return Stage("ntm-features", TEXT_INPUTS, formats.NTM_INPUT_TYPES + _npy_out(settings), JSON,
                 _texts(settings), run, encode,
                 (WARMUP_TEXT.encode(), TEXT_PLAIN, RECORDIO))


def topics_to_knn_stage(model: Model, settings: Settings) -> Stage:
    from serving import formats, neighbours, npy

    n_topics = settings.num_topics or model.num_topics

    def decode(body: bytes, media: MediaType) -> np.ndarray:
        if media.type == npy.NPY:  # the SageMaker SDK's NumpySerializer
            return npy.decode_rows(body, n_topics, settings.max_values, settings.max_records)
        topics = formats.decode_ntm_output(body, media, n_topics, settings.max_values,
                                           settings.max_records)
        if topics.shape[0] > settings.max_records:
            raise PayloadTooLarge(
                f"{topics.shape[0]} records; the limit is {settings.max_records}")
        return topics

    def run(topics: np.ndarray, options: Options) -> np.ndarray:
        if not np.isfinite(topics).all():
            raise UnprocessableEntity("topic weights must be finite numbers")
        unit, zero = neighbours.unit_rows(topics)  # k-NN is trained on unit vectors too
        if zero.any():
            raise UnprocessableEntity(
                f"record {int(np.flatnonzero(zero)[0]) + 1}: all topic weights are zero")
        return unit

    def encode(topics: np.ndarray, media: MediaType) -> bytes:
        if media.type == npy.NPY:
            vectors.check_output_size(4 * topics.size, settings.max_response_bytes,
                                      "send fewer records per request")
            return npy.encode(topics.astype(np.float32))
        return formats.encode_knn_input(topics, media, settings.max_response_bytes)

    k = n_topics or 20
    warm = orjson.dumps({"predictions": [{"topic_weights": [1.0 / k] * k}]})
    return Stage("topics-to-knn", (*formats.NTM_OUTPUT_TYPES, npy.NPY),
                 formats.KNN_INPUT_TYPES + _npy_out(settings), TEXT_CSV, decode, run, encode,
                 (warm, JSON, TEXT_CSV))


# Recommendations per query, by response content type (negotiation offers only these keys).
RECOMMEND_ENCODERS: dict[str, Callable[[list[list[dict]]], bytes]] = {
    JSON: lambda results: orjson.dumps(
        {"predictions": [{"recommendations": r} for r in results]}),
    JSONLINES: lambda results: b"".join(
        orjson.dumps({"recommendations": r}) + b"\n" for r in results),
}


def recommend_stage(model: Model, settings: Settings) -> Stage:
    from serving import formats, neighbours

    catalog = model.catalog
    ids = np.asarray(catalog.ids, dtype=object)
    titles = np.asarray(catalog.titles, dtype=object)
    groups = np.asarray(catalog.newsgroups, dtype=object)
    # Smallest JSON entry: {"id":"","title":"","newsgroup":"","score":0.0} plus the shortest
    # id, title and newsgroup in the catalog.
    entry_bytes = 48 + sum(min((len(v) for v in a), default=0) for a in (ids, titles, groups))
    threads = neighbours.thread_ids(catalog.titles)
    ranking = neighbours.Ranking(settings.knn_metric, settings.knn_distance)

    def decode(body: bytes, media: MediaType) -> list[tuple[np.ndarray, np.ndarray]]:
        rows = formats.decode_knn_output(body, media, settings.max_records)
        if len(rows) > settings.max_records:
            raise PayloadTooLarge(f"{len(rows)} records; the limit is "
                                         f"{settings.max_records}")
        return rows

    def run(rows: Sequence[tuple[np.ndarray, np.ndarray]], options: Options) -> list[list[dict]]:
        want = options.top_k or settings.recommendations
        total = sum(min(labels.size, want) for labels, _ in rows)
        vectors.check_output_size(total * entry_bytes, settings.max_response_bytes,
                                  f"{total} recommendations were asked for; ask for fewer "
                                  "(custom attribute top_k) or send fewer records per request")
        results = []
        for number, (labels, values) in enumerate(rows, 1):
            if labels.shape != values.shape:
                raise UnprocessableEntity(f"record {number}: labels and distances differ in "
                                          "length")
            if not catalog.valid(labels).all():
                raise UnprocessableEntity(
                    f"record {number}: neighbour labels outside the catalog of {len(catalog)} "
                    "training documents (was k-NN trained on this model's NTM data?)")
            try:
                order, scores = ranking.rank(values)
            except neighbours.NeighbourError as exc:
                raise UnprocessableEntity(f"record {number}: {exc}") from None
            keep = neighbours.distinct(threads, labels[order], want)
            picked, scores = labels[order][keep], scores[keep]
            results.append([
                {"id": i, "title": t, "newsgroup": g, "score": round(float(c), 6)}
                for i, t, g, c in zip(ids[picked], titles[picked], groups[picked], scores,
                                      strict=True)
            ])
        return results

    def encode(results: list[list[dict]], media: MediaType) -> bytes:
        return RECOMMEND_ENCODERS[media.type](results)

    n = min(len(catalog), 3)
    warm = orjson.dumps({"predictions": [{"predicted_label": 0.0, "labels": list(range(n)),
                                          "distances": [0.1 * (i + 1) for i in range(n)]}]})
    return Stage("recommend", formats.KNN_OUTPUT_TYPES, tuple(RECOMMEND_ENCODERS), JSON, decode,
                 run, encode, (warm, JSON, JSON))


BUILDERS = {
    "classify": classify_stage,
    "ntm-features": ntm_features_stage,
    "topics-to-knn": topics_to_knn_stage,
    "recommend": recommend_stage,
}


def build(model: Model, settings: Settings) -> Stage:
    return BUILDERS[settings.stage](model, settings)
