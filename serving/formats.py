"""The built-in NTM and k-NN wire formats (contract §4-§5), both directions.

Shared by the serving stages and by the NTM/k-NN stand-in containers.  Every encoder returns bytes;
send them with ``Content-Type: content_type_for(media)`` (private parameters such as ``sparse`` and
``verbose`` dropped).  Decoders raise UnsupportedMediaType for a type the real algorithm does not
read, BadRequest for malformed bodies, UnprocessableEntity for well-formed bodies of the wrong shape
(wrong width, missing fields, another model's output).  Blank lines in CSV and JSON Lines bodies are
skipped; rows and lines are counted from 1 in messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import scipy.sparse as sp

from serving import recordio, vectors
from serving.codecs import iter_json_lines, load_json, type_name, utf8_text
from serving.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, MediaType, content_type_for

__all__ = [
    "KNN_INPUT_TYPES",
    "KNN_OUTPUT_TYPES",
    "NTM_INPUT_TYPES",
    "NTM_OUTPUT_TYPES",
    "content_type_for",
    "decode_knn_input",
    "decode_knn_output",
    "decode_ntm_input",
    "decode_ntm_output",
    "encode_knn_input",
    "encode_knn_output",
    "encode_ntm_input",
    "encode_ntm_output",
]

NTM_INPUT_TYPES = (TEXT_CSV, JSON, JSONLINES, RECORDIO)
NTM_OUTPUT_TYPES = (JSON, JSONLINES, RECORDIO)
KNN_INPUT_TYPES = (TEXT_CSV, JSON, JSONLINES, RECORDIO)
KNN_OUTPUT_TYPES = (JSON, JSONLINES, RECORDIO)

NOT_VERBOSE = (
    "the k-NN response has no labels/distances; set "
    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=application/json; verbose=true on the k-NN container"
)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _check_type(
    media: MediaType, allowed: Sequence[str], error: type[Exception], what: str
) -> None:
    if media.type not in allowed:
        raise error(f"{media.type} is not {what}; use one of {', '.join(allowed)}")


# --- NTM ---------------------------------------------------------------------------------------


def encode_ntm_input(
    X: sp.csr_matrix | sp.csr_array, media: MediaType, max_bytes: int | None = None
) -> bytes:
    """Word-count rows as an NTM request: CSV (dense), JSON/JSON Lines (dense, or sparse with the
    media parameter ``sparse=true``), RecordIO (sparse).

    A dense answer (CSV, JSON without ``sparse=true``) has at least 2 bytes per vocabulary word
    per row; if that is over ``max_bytes`` it is refused (413) before it is built.
    """
    _check_type(media, NTM_INPUT_TYPES, NotAcceptable, "an NTM request type")
    if media.type == TEXT_CSV or (media.type != RECORDIO and not media.flag("sparse")):
        vectors.check_output_size(
            2 * X.shape[0] * X.shape[1], max_bytes,
            f"dense rows of {X.shape[1]} words are mostly zeros: accept "
            f"{RECORDIO} or {JSON}; sparse=true, or send fewer records per request")
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.sum_duplicates()
    if media.type == RECORDIO:
        return recordio.encode_sparse_rows(X)
    if media.type == TEXT_CSV:
        return vectors.sparse_csv(X)
    if media.flag("sparse"):
        n_cols, data = X.shape[1], vectors.json_ready(X.data)
        instances = [
            {"data": {"features": {"keys": X.indices[a:b], "shape": [n_cols], "values": data[a:b]}}}
            for a, b in zip(X.indptr[:-1], X.indptr[1:], strict=True)
        ]
    else:
        instances = [{"features": row} for row in vectors.json_ready(X.toarray())]
    if media.type == JSON:
        return orjson.dumps({"instances": instances}, option=_NUMPY)
    return b"".join(orjson.dumps(inst, option=_NUMPY) + b"\n" for inst in instances)


def decode_ntm_input(body: bytes, media: MediaType, n_features: int) -> sp.csr_matrix:
    """Any NTM request format of contract §4 as a float32 CSR matrix of width ``n_features``."""
    _check_type(media, NTM_INPUT_TYPES, UnsupportedMediaType, "an NTM request type")
    return sp.csr_matrix(vectors.decode_features(body, media, n_features), dtype=np.float32)


def encode_ntm_output(W: np.ndarray, media: MediaType) -> bytes:
    """Topic weights (n, K) as NTM answers: JSON, JSON Lines, RecordIO (label["topic_weights"])."""
    _check_type(media, NTM_OUTPUT_TYPES, NotAcceptable, "an NTM response type")
    W = np.ascontiguousarray(W, dtype=np.float32)
    if W.ndim != 2:
        raise ValueError(f"topic weights must be 2-D, not shape {W.shape}")
    if media.type == RECORDIO:
        return recordio.encode_tensor_rows(len(W), label={"topic_weights": W})
    if media.type == JSON:
        return orjson.dumps({"predictions": [{"topic_weights": w} for w in W]}, option=_NUMPY)
    return b"".join(orjson.dumps({"topic_weights": w}, option=_NUMPY) + b"\n" for w in W)


def _stack(rows: list[tuple[str, np.ndarray]], n_cols: int | None) -> np.ndarray:
    width = n_cols if n_cols is not None else (rows[0][1].size if rows else 0)
    for what, row in rows:
        if row.size != width:
            raise UnprocessableEntity(f"{what} has {row.size} values; expected {width}")
    if not rows:
        return np.zeros((0, width), dtype=np.float32)
    return vectors.as_float32(np.vstack([r for _, r in rows]), "the NTM response")


def _predictions(
    body: bytes, media: MediaType, max_records: int | None = None
) -> list[tuple[str, dict]]:
    """(name for messages, object) of each prediction in a JSON or JSON Lines response."""
    if media.type == JSON:
        doc = load_json(utf8_text(body))
        if not isinstance(doc, dict) or not isinstance(doc.get("predictions"), list):
            raise UnprocessableEntity(
                f'expected {{"predictions": [...]}}, not {vectors.describe(doc)}')
        recordio.check_record_count(len(doc["predictions"]), max_records)
        items = [(f"prediction {i}", p) for i, p in enumerate(doc["predictions"], start=1)]
    else:
        items = []
        for i, p in iter_json_lines(utf8_text(body)):
            recordio.check_record_count(len(items) + 1, max_records)
            items.append((f"line {i}", p))
    for what, p in items:
        if not isinstance(p, dict):
            raise UnprocessableEntity(f"{what}: expected an object, not {type_name(p)}")
    return items


def decode_ntm_output(
    body: bytes, media: MediaType, n_topics: int | None, max_values: int = recordio.MAX_DENSE,
    max_records: int | None = None,
) -> np.ndarray:
    """NTM's answer as a float32 (n, K) array; K must equal ``n_topics`` when given.

    A sparse RecordIO tensor's declared width is checked against ``n_topics`` and the request's
    total against ``max_values`` before it is expanded.
    """
    _check_type(media, NTM_OUTPUT_TYPES, UnsupportedMediaType, "an NTM response type")
    if not body:
        raise BadRequest("the NTM response body is empty")
    if media.type == RECORDIO:
        tensors = recordio.decode_tensor_rows(body, "label", "topic_weights", n_topics,
                                              max_values, max_records)
        return _stack(
            [(f"RecordIO record {i}", r.ravel()) for i, r in enumerate(tensors, 1)], n_topics
        )
    rows = []
    for what, p in _predictions(body, media, max_records):
        if "topic_weights" not in p:
            raise UnprocessableEntity(f'{what} has no "topic_weights"')
        rows.append((what, vectors.vector(p["topic_weights"], f"{what} topic_weights")))
    return _stack(rows, n_topics)


# --- k-NN --------------------------------------------------------------------------------------


def encode_knn_input(M: np.ndarray, media: MediaType, max_bytes: int | None = None) -> bytes:
    """Dense query vectors (n, d) as a k-NN request: CSV, JSON, JSON Lines or RecordIO.

    Refused (413) before it is built if even its smallest encoding (2 bytes a number in text,
    4 in RecordIO) is over ``max_bytes``.
    """
    _check_type(media, KNN_INPUT_TYPES, NotAcceptable, "a k-NN request type")
    M = np.ascontiguousarray(M, dtype=np.float32)
    if M.ndim != 2:
        raise ValueError(f"k-NN queries must be 2-D, not shape {M.shape}")
    vectors.check_output_size((4 if media.type == RECORDIO else 2) * M.size, max_bytes,
                              "send fewer records per request")
    if media.type == RECORDIO:
        return recordio.encode_dense_rows(M)
    if media.type == TEXT_CSV:
        return vectors.dense_csv(M)
    if media.type == JSON:
        return orjson.dumps({"instances": [{"features": m} for m in M]}, option=_NUMPY)
    return b"".join(orjson.dumps({"features": m}, option=_NUMPY) + b"\n" for m in M)


def decode_knn_input(
    body: bytes, media: MediaType, n_features: int, max_values: int = recordio.MAX_DENSE
) -> np.ndarray:
    """A k-NN request as float32 (n, n_features); NTM's output shapes are refused (422).

    Sparse rows are made dense only if n * n_features is at most ``max_values`` (else 413).
    """
    _check_type(media, KNN_INPUT_TYPES, UnsupportedMediaType, "a k-NN request type")
    if media.type == TEXT_CSV and (media.param("label_size") or "0").strip() != "0":
        raise UnprocessableEntity("k-NN inference reads text/csv with label_size=0 only")
    M = vectors.decode_features(body, media, n_features)
    if not sp.issparse(M):
        return np.asarray(M, dtype=np.float32)
    if M.shape[0] * M.shape[1] > max_values:
        raise PayloadTooLarge(
            f"{M.shape[0]} sparse rows of width {M.shape[1]} expand to more than {max_values} "
            "values; send fewer records per request")
    return M.toarray()


def encode_knn_output(
    predicted_label: np.ndarray,
    labels: Sequence[np.ndarray] | np.ndarray | None,
    distances: Sequence[np.ndarray] | np.ndarray | None,
    media: MediaType,
) -> bytes:
    """k-NN answers; with media parameter ``verbose=true`` each also carries labels/distances."""
    _check_type(media, KNN_OUTPUT_TYPES, NotAcceptable, "a k-NN response type")
    pred = np.asarray(predicted_label, dtype=np.float32).ravel()
    verbose = media.flag("verbose")
    if verbose and (labels is None or distances is None):
        raise ValueError("verbose k-NN output needs labels and distances")
    objs: list[dict[str, Any]] = []
    for i, p in enumerate(pred):
        obj: dict[str, Any] = {"predicted_label": p}
        if verbose:
            assert labels is not None and distances is not None
            obj["labels"] = np.asarray(labels[i], dtype=np.float32).ravel()
            obj["distances"] = np.asarray(distances[i], dtype=np.float32).ravel()
        objs.append(obj)
    if media.type == RECORDIO:
        return recordio.encode_records(recordio.make_record(label=o) for o in objs)
    if media.type == JSON:
        return orjson.dumps({"predictions": objs}, option=_NUMPY)
    return b"".join(orjson.dumps(o, option=_NUMPY) + b"\n" for o in objs)


def _neighbours(lab: np.ndarray, dist: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    lab64, dist64 = lab.astype(np.float64).ravel(), dist.astype(np.float64).ravel()
    if lab64.size != dist64.size:
        raise UnprocessableEntity(f"{what} has {lab64.size} labels but {dist64.size} distances")
    if not (vectors.integral(lab64).all() and np.isfinite(dist64).all()):
        raise UnprocessableEntity(f"{what} has a non-integer label or a non-finite distance")
    return lab64.astype(np.int64), dist64


def decode_knn_output(
    body: bytes, media: MediaType, max_records: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels int64, distances float64) per query from a verbose k-NN answer (413 past
    ``max_records``, before the rest is read)."""
    _check_type(media, KNN_OUTPUT_TYPES, UnsupportedMediaType, "a k-NN response type")
    if not body:
        raise BadRequest("the k-NN response body is empty")
    out = []
    if media.type == RECORDIO:
        for i, rec in enumerate(recordio.read_records(body), start=1):
            recordio.check_record_count(i, max_records)
            if "labels" not in rec.label or "distances" not in rec.label:
                raise UnprocessableEntity(f"RecordIO record {i}: {NOT_VERBOSE}")
            lab, lab_keys, _ = recordio.record_tensor(rec, "label", "labels", i)
            dist, dist_keys, _ = recordio.record_tensor(rec, "label", "distances", i)
            if lab_keys.size or dist_keys.size:
                raise UnprocessableEntity(f"RecordIO record {i}: labels/distances must be dense")
            out.append(_neighbours(lab, dist, f"RecordIO record {i}"))
        return out
    for what, p in _predictions(body, media, max_records):
        if "labels" not in p or "distances" not in p:
            raise UnprocessableEntity(f"{what}: {NOT_VERBOSE}")
        lab = vectors.vector(p["labels"], f"{what} labels")
        out.append(_neighbours(lab, vectors.vector(p["distances"], f"{what} distances"), what))
    return out
