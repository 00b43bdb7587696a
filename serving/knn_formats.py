"""k-NN's wire formats (contract §5), both directions: the requests k-NN reads (what
``topics-to-knn`` writes and the k-NN stand-in reads) and the answers it writes (what the k-NN
stand-in writes and ``recommend`` reads).  One codec table per direction, keyed by content type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from serving import recordio, vectors
from serving.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from serving.format_common import JSON_WRITERS, pick, predictions
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, MediaType

NOT_VERBOSE = (
    "the k-NN response has no labels/distances; set "
    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=application/json; verbose=true on the k-NN container"
)


def _knn_request_json(M: np.ndarray, media: MediaType) -> bytes:
    return JSON_WRITERS[media.type]([{"features": m} for m in M], "instances")


def _knn_request_csv(M: np.ndarray, media: MediaType) -> bytes:
    return vectors.dense_csv(M)


def _knn_request_recordio(M: np.ndarray, media: MediaType) -> bytes:
    return recordio.encode_dense_rows(M)


# Request bodies k-NN reads (contract §5), in the order content negotiation breaks ties in.
KNN_REQUEST_ENCODERS: dict[str, Callable[[np.ndarray, MediaType], bytes]] = {
    TEXT_CSV: _knn_request_csv,
    JSON: _knn_request_json,
    JSONLINES: _knn_request_json,
    RECORDIO: _knn_request_recordio,
}
KNN_INPUT_TYPES = tuple(KNN_REQUEST_ENCODERS)


def encode_knn_input(M: np.ndarray, media: MediaType, max_bytes: int | None = None) -> bytes:
    """Dense query vectors (n, d) as a k-NN request: CSV, JSON, JSON Lines or RecordIO.

    Refused (413) before it is built if even its smallest encoding (2 bytes a number in text,
    4 in RecordIO) is over ``max_bytes``.
    """
    encoder = pick(KNN_REQUEST_ENCODERS, media, NotAcceptable, "a k-NN request type")
    M = np.ascontiguousarray(M, dtype=np.float32)
    if M.ndim != 2:
        raise ValueError(f"k-NN queries must be 2-D, not shape {M.shape}")
    vectors.check_output_size((4 if media.type == RECORDIO else 2) * M.size, max_bytes,
                              "send fewer records per request")
    return encoder(M, media)


def decode_knn_input(
    body: bytes, media: MediaType, n_features: int, max_values: int = recordio.MAX_DENSE
) -> np.ndarray:
    """A k-NN request as float32 (n, n_features); NTM's output shapes are refused (422).

    Sparse rows are made dense only if n * n_features is at most ``max_values`` (else 413).
    """
    decoder = pick(vectors.FEATURE_DECODERS, media, UnsupportedMediaType, "a k-NN request type")
    if media.type == TEXT_CSV and (media.param("label_size") or "0").strip() != "0":
        raise UnprocessableEntity("k-NN inference reads text/csv with label_size=0 only")
    M = decoder(body, media, n_features)
    if not sp.issparse(M):
        return np.asarray(M, dtype=np.float32)
    if M.shape[0] * M.shape[1] > max_values:
        raise PayloadTooLarge(
            f"{M.shape[0]} sparse rows of width {M.shape[1]} expand to more than {max_values} "
            "values; send fewer records per request")
    return M.toarray()


def _knn_response_json(objs: list[dict[str, Any]], media: MediaType) -> bytes:
    return JSON_WRITERS[media.type](objs, "predictions")


def _knn_response_recordio(objs: list[dict[str, Any]], media: MediaType) -> bytes:
    return recordio.encode_records(recordio.make_record(label=o) for o in objs)


# Response bodies k-NN writes (contract §5).
KNN_RESPONSE_ENCODERS: dict[str, Callable[[list[dict[str, Any]], MediaType], bytes]] = {
    JSON: _knn_response_json,
    JSONLINES: _knn_response_json,
    RECORDIO: _knn_response_recordio,
}
KNN_OUTPUT_TYPES = tuple(KNN_RESPONSE_ENCODERS)


def encode_knn_output(
    predicted_label: np.ndarray,
    labels: Sequence[np.ndarray] | np.ndarray | None,
    distances: Sequence[np.ndarray] | np.ndarray | None,
    media: MediaType,
) -> bytes:
    """k-NN answers; with media parameter ``verbose=true`` each also carries labels/distances."""
    encoder = pick(KNN_RESPONSE_ENCODERS, media, NotAcceptable, "a k-NN response type")
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
    return encoder(objs, media)


def _neighbours(lab: np.ndarray, dist: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    lab64, dist64 = lab.astype(np.float64).ravel(), dist.astype(np.float64).ravel()
    if lab64.size != dist64.size:
        raise UnprocessableEntity(f"{what} has {lab64.size} labels but {dist64.size} distances")
    if not (vectors.integral(lab64).all() and np.isfinite(dist64).all()):
        raise UnprocessableEntity(f"{what} has a non-integer label or a non-finite distance")
    return lab64.astype(np.int64), dist64


Neighbours = list[tuple[np.ndarray, np.ndarray]]


def _knn_response_rows_recordio(body: bytes, media: MediaType,
                                max_records: int | None) -> Neighbours:
    out = []
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


def _knn_response_rows_json(body: bytes, media: MediaType,
                            max_records: int | None) -> Neighbours:
    out = []
    for what, p in predictions(body, media, max_records):
        if "labels" not in p or "distances" not in p:
            raise UnprocessableEntity(f"{what}: {NOT_VERBOSE}")
        lab = vectors.vector(p["labels"], f"{what} labels")
        out.append(_neighbours(lab, vectors.vector(p["distances"], f"{what} distances"), what))
    return out


KNN_RESPONSE_DECODERS: dict[str, Callable[[bytes, MediaType, int | None], Neighbours]] = {
    JSON: _knn_response_rows_json,
    JSONLINES: _knn_response_rows_json,
    RECORDIO: _knn_response_rows_recordio,
}


def decode_knn_output(
    body: bytes, media: MediaType, max_records: int | None = None
) -> Neighbours:
    """(labels int64, distances float64) per query from a verbose k-NN answer (413 past
    ``max_records``, before the rest is read)."""
    decoder = pick(KNN_RESPONSE_DECODERS, media, UnsupportedMediaType, "a k-NN response type")
    if not body:
        raise BadRequest("the k-NN response body is empty")
    return decoder(body, media, max_records)
