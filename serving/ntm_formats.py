"""NTM's wire formats (contract §4), both directions: the requests NTM reads (what
``ntm-features`` writes and the NTM stand-in reads) and the answers it writes (what the NTM
stand-in writes and ``topics-to-knn`` reads).  One codec table per direction, keyed by content type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from serving import recordio, vectors
from serving.errors import BadRequest, NotAcceptable, UnprocessableEntity, UnsupportedMediaType
from serving.format_common import JSON_WRITERS, pick, predictions
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, MediaType


def _ntm_request_recordio(X: sp.csr_matrix, media: MediaType) -> bytes:
    return recordio.encode_sparse_rows(X)


def _ntm_request_csv(X: sp.csr_matrix, media: MediaType) -> bytes:
    return vectors.sparse_csv(X)


def _ntm_request_json(X: sp.csr_matrix, media: MediaType) -> bytes:
    if media.flag("sparse"):
        n_cols, data = X.shape[1], vectors.json_ready(X.data)
        instances = [
            {"data": {"features": {"keys": X.indices[a:b], "shape": [n_cols], "values": data[a:b]}}}
            for a, b in zip(X.indptr[:-1], X.indptr[1:], strict=True)
        ]
    else:
        instances = [{"features": row} for row in vectors.json_ready(X.toarray())]
    return JSON_WRITERS[media.type](instances, "instances")


# Request bodies NTM reads (contract §4), in the order content negotiation breaks ties in.
NTM_REQUEST_ENCODERS: dict[str, Callable[[sp.csr_matrix, MediaType], bytes]] = {
    JSON: _ntm_request_json,
    JSONLINES: _ntm_request_json,
    TEXT_CSV: _ntm_request_csv,
    RECORDIO: _ntm_request_recordio,
}
NTM_INPUT_TYPES = tuple(NTM_REQUEST_ENCODERS)


def encode_ntm_input(
    X: sp.csr_matrix | sp.csr_array, media: MediaType, max_bytes: int | None = None
) -> bytes:
    """Word-count rows as an NTM request: CSV (dense), JSON/JSON Lines (dense, or sparse with the
    media parameter ``sparse=true``), RecordIO (sparse).

    A dense answer (CSV, JSON without ``sparse=true``) has at least 2 bytes per vocabulary word
    per row; if that is over ``max_bytes`` it is refused (413) before it is built.
    """
    encoder = pick(NTM_REQUEST_ENCODERS, media, NotAcceptable, "an NTM request type")
    if media.type == TEXT_CSV or (media.type != RECORDIO and not media.flag("sparse")):
        vectors.check_output_size(
            2 * X.shape[0] * X.shape[1], max_bytes,
            f"dense rows of {X.shape[1]} words are mostly zeros: accept "
            f"{RECORDIO} or {JSON}; sparse=true, or send fewer records per request")
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.sum_duplicates()
    return encoder(X, media)


def decode_ntm_input(body: bytes, media: MediaType, n_features: int) -> sp.csr_matrix:
    """Any NTM request format of contract §4 as a float32 CSR matrix of width ``n_features``."""
    decoder = pick(vectors.FEATURE_DECODERS, media, UnsupportedMediaType, "an NTM request type")
    return sp.csr_matrix(decoder(body, media, n_features), dtype=np.float32)


def _ntm_response_recordio(W: np.ndarray, media: MediaType) -> bytes:
    return recordio.encode_tensor_rows(len(W), label={"topic_weights": W})


def _ntm_response_json(W: np.ndarray, media: MediaType) -> bytes:
    return JSON_WRITERS[media.type]([{"topic_weights": w} for w in W], "predictions")


# Response bodies NTM writes (contract §4).
NTM_RESPONSE_ENCODERS: dict[str, Callable[[np.ndarray, MediaType], bytes]] = {
    JSON: _ntm_response_json,
    JSONLINES: _ntm_response_json,
    RECORDIO: _ntm_response_recordio,
}
NTM_OUTPUT_TYPES = tuple(NTM_RESPONSE_ENCODERS)


def encode_ntm_output(W: np.ndarray, media: MediaType) -> bytes:
    """Topic weights (n, K) as NTM answers: JSON, JSON Lines, RecordIO (label["topic_weights"])."""
    encoder = pick(NTM_RESPONSE_ENCODERS, media, NotAcceptable, "an NTM response type")
    W = np.ascontiguousarray(W, dtype=np.float32)
    if W.ndim != 2:
        raise ValueError(f"topic weights must be 2-D, not shape {W.shape}")
    return encoder(W, media)


def _stack(rows: list[tuple[str, np.ndarray]], n_cols: int | None) -> np.ndarray:
    width = n_cols if n_cols is not None else (rows[0][1].size if rows else 0)
    for what, row in rows:
        if row.size != width:
            raise UnprocessableEntity(f"{what} has {row.size} values; expected {width}")
    if not rows:
        return np.zeros((0, width), dtype=np.float32)
    return vectors.as_float32(np.vstack([r for _, r in rows]), "the NTM response")


def _ntm_response_rows_recordio(body: bytes, media: MediaType, n_topics: int | None,
                                max_values: int, max_records: int | None) -> np.ndarray:
    tensors = recordio.decode_tensor_rows(body, "label", "topic_weights", n_topics, max_values,
                                          max_records)
    return _stack([(f"RecordIO record {i}", r.ravel()) for i, r in enumerate(tensors, 1)],
                  n_topics)


def _ntm_response_rows_json(body: bytes, media: MediaType, n_topics: int | None,
                            max_values: int, max_records: int | None) -> np.ndarray:
    rows = []
    for what, p in predictions(body, media, max_records):
        if "topic_weights" not in p:
            raise UnprocessableEntity(f'{what} has no "topic_weights"')
        rows.append((what, vectors.vector(p["topic_weights"], f"{what} topic_weights")))
    return _stack(rows, n_topics)


NTM_RESPONSE_DECODERS: dict[str, Callable[..., np.ndarray]] = {
    JSON: _ntm_response_rows_json,
    JSONLINES: _ntm_response_rows_json,
    RECORDIO: _ntm_response_rows_recordio,
}


def decode_ntm_output(
    body: bytes, media: MediaType, n_topics: int | None, max_values: int = recordio.MAX_DENSE,
    max_records: int | None = None,
) -> np.ndarray:
    """NTM's answer as a float32 (n, K) array; K must equal ``n_topics`` when given.

    A sparse RecordIO tensor's declared width is checked against ``n_topics`` and the request's
    total against ``max_values`` before it is expanded.
    """
    decoder = pick(NTM_RESPONSE_DECODERS, media, UnsupportedMediaType, "an NTM response type")
    if not body:
        raise BadRequest("the NTM response body is empty")
    return decoder(body, media, n_topics, max_values, max_records)


