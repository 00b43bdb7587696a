"""Feature vectors in requests, shared by NTM's and k-NN's request formats: numbers as CSV
text (dense or sparse rows) and JSON instances (``{"features": [...]}``, ``{"data":
{"features": {"values"|"keys"/"shape"}}}``), in JSON or JSON Lines bodies, or RecordIO.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from serving.body import iter_json_lines, load_json, split_lines, type_name, utf8_bytes, utf8_text
from serving.errors import BadRequest, PayloadTooLarge, UnprocessableEntity
from serving.mediatypes import JSON, JSONLINES, RECORDIO, TEXT_CSV, MediaType

if TYPE_CHECKING:
    import scipy.sparse as sp

NTM_OUTPUT_HINT = (
    " - this looks like NTM's output (topic_weights), not a request; k-NN cannot read it, "
    "so put the topics-to-knn stage between NTM and k-NN"
)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float32(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float32; UnprocessableEntity if any is NaN, infinite or beyond float32's
    range (the cast runs under ``errstate``: no RuntimeWarning reaches stderr)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values).astype(np.float32, copy=False)
        finite = bool(np.isfinite(out).all())
    if not finite:
        raise UnprocessableEntity(
            f"{what} holds NaN, an infinite value or a value beyond float32's range "
            f"(|x| > {FLOAT32_MAX:.4g})")
    return out


def check_output_size(min_bytes: int, limit: int | None, advice: str) -> None:
    """413 before an answer of at least ``min_bytes`` is built, if that is over ``limit``."""
    if limit is not None and min_bytes > limit:
        raise PayloadTooLarge(
            f"the answer would be at least {min_bytes} bytes, over the response limit of "
            f"{limit} bytes; {advice}")


def integral(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)


def number_strings(values: np.ndarray) -> list[str]:
    """Shortest round-trip text per value; whole numbers without ".0"."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.astype(np.int64).astype(str).tolist()
    out = values.astype(str)
    whole = integral(values)
    out[whole] = values[whole].astype(np.int64).astype(str)
    return out.tolist()


def json_ready(matrix: np.ndarray) -> np.ndarray:
    """int64 if every value is whole (compact JSON), else float32 (the wire type)."""
    return matrix.astype(np.int64) if integral(matrix).all() else matrix.astype(np.float32)


def dense_csv(M: np.ndarray) -> bytes:
    n, d = M.shape
    strings = number_strings(M.ravel())
    return "".join(",".join(strings[i * d : (i + 1) * d]) + "\n" for i in range(n)).encode()


def sparse_csv(X: sp.csr_matrix) -> bytes:
    strings, keys, ptr = number_strings(X.data), X.indices.tolist(), X.indptr.tolist()
    template, lines = ["0"] * X.shape[1], []
    for i in range(X.shape[0]):
        row = template.copy()
        for j in range(ptr[i], ptr[i + 1]):
            row[keys[j]] = strings[j]
        lines.append(",".join(row) + "\n")
    return "".join(lines).encode()


def csv_matrix(text: str, n_features: int) -> np.ndarray:
    """Numeric CSV (no header, blank lines skipped) as a float32 (n, n_features) array."""
    lines = list(split_lines(text, keep_blank=False))
    if not lines:
        raise BadRequest("the CSV body has no rows")
    try:
        M = np.loadtxt(
            io.StringIO("\n".join(line for _, line in lines)),
            delimiter=",",
            quotechar='"',
            comments=None,
            dtype=np.float32,
            ndmin=2,
        )
    except ValueError:
        M = None
    if M is None or M.shape[1] != n_features:
        for number, line in lines:  # find the culprit for a message that does not echo it
            fields = line.split(",")
            if len(fields) != n_features:
                raise UnprocessableEntity(
                    f"CSV line {number} has {len(fields)} values; expected {n_features}"
                )
            try:
                [float(f.strip().strip('"')) for f in fields]
            except ValueError:
                raise BadRequest(f"CSV line {number} holds a value that is not a number") from None
        raise BadRequest("malformed CSV body")
    if not np.isfinite(M).all():
        raise UnprocessableEntity("the CSV body holds NaN or infinite values")
    return M


# --- JSON instances ----------------------------------------------------------------------------


def describe(doc: Any) -> str:
    if isinstance(doc, dict):
        return "an object with keys " + ", ".join(repr(str(k)[:40]) for k in list(doc)[:5])
    return type_name(doc)


def vector(value: Any, what: str, kinds: str = "iuf") -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be an array of numbers, not {type_name(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{what} must be an array of numbers") from None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in kinds):
        raise BadRequest(f"{what} must be an array of {'integers' if kinds == 'iu' else 'numbers'}")
    # numpy takes true/false beside numbers as 1/0 (np.asarray([True, 2]) is an int array)
    if any(item.__class__ is bool for item in value):
        raise BadRequest(f"{what} must be an array of numbers; it holds true or false")
    return arr


def instance(inst: Any, what: str, n_features: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, keys or None) of one request instance, in any of NTM's JSON forms."""
    if not isinstance(inst, dict):
        raise BadRequest(f"{what}: expected an object, not {type_name(inst)}")
    if "features" in inst:
        values, keys = vector(inst["features"], f"{what} features"), None
    elif isinstance(inst.get("data"), dict) and isinstance(inst["data"].get("features"), dict):
        tensor = inst["data"]["features"]
        values = vector(tensor.get("values"), f"{what} data.features.values")
        keys = vector(tensor["keys"], f"{what} keys", "iu") if "keys" in tensor else None
        shape = tensor.get("shape")
        if shape is not None and shape != [n_features]:
            raise UnprocessableEntity(f"{what}: shape must be [{n_features}]")
    else:
        hint = NTM_OUTPUT_HINT if "topic_weights" in inst else ""
        raise UnprocessableEntity(
            f'{what}: expected {{"features": [...]}} or {{"data": {{"features": {{...}}}}}}, '
            f"not {describe(inst)}{hint}"
        )
    if keys is None and values.size != n_features:
        raise UnprocessableEntity(f"{what} has {values.size} features; expected {n_features}")
    if keys is not None:
        if keys.size != values.size:
            raise UnprocessableEntity(f"{what} has {keys.size} keys and {values.size} values")
        if keys.size and (keys.min() < 0 or keys.max() >= n_features):
            raise UnprocessableEntity(f"{what} has a key outside 0..{n_features - 1}")
    return as_float32(values, what), keys


def json_rows(body: bytes, media: MediaType, n_features: int) -> sp.csr_matrix:
    data = utf8_bytes(body)
    if media.type == JSON:
        doc = load_json(data)
        if not isinstance(doc, dict) or "instances" not in doc:
            hint = NTM_OUTPUT_HINT if isinstance(doc, dict) and "predictions" in doc else ""
            raise UnprocessableEntity(
                f'expected {{"instances": [...]}}, not {describe(doc)}{hint}'
            )
        if not isinstance(doc["instances"], list):
            raise BadRequest(f'"instances" must be an array, not {type_name(doc["instances"])}')
        rows = [
            instance(x, f"instance {i}", n_features)
            for i, x in enumerate(doc["instances"], start=1)
        ]
    else:
        rows = [instance(x, f"line {i}", n_features) for i, x in iter_json_lines(data)]
    if not rows:
        raise BadRequest("the request holds no instances")
    from serving import recordio  # protobuf: loaded by the stages that read RecordIO only

    return recordio.csr_from_rows(rows, n_features, np.float32)


def _recordio_rows(body: bytes, media: MediaType, n_features: int) -> sp.csr_matrix | np.ndarray:
    import scipy.sparse as sp

    from serving import recordio

    try:
        M = recordio.decode_matrix(body, n_cols=n_features)
    except UnprocessableEntity as exc:
        hint = NTM_OUTPUT_HINT if "topic_weights" in exc.message else ""
        raise UnprocessableEntity(exc.message + hint) from None
    if M.shape[0] == 0:
        raise BadRequest("the request holds no records")
    if sp.issparse(M):
        M.data = as_float32(M.data, "the RecordIO request")
        return M.astype(np.float32, copy=False)
    return as_float32(M, "the RecordIO request")


def _csv_rows(body: bytes, media: MediaType, n_features: int) -> np.ndarray:
    return csv_matrix(utf8_text(body), n_features)


def _nonempty(
    decoder: Callable[[bytes, MediaType, int], sp.csr_matrix | np.ndarray],
) -> Callable[[bytes, MediaType, int], sp.csr_matrix | np.ndarray]:
    def decode(body: bytes, media: MediaType, n_features: int) -> sp.csr_matrix | np.ndarray:
        if not body:
            raise BadRequest("the request body is empty")
        return decoder(body, media, n_features)
    return decode


# Feature-vector request bodies (NTM's and k-NN's requests, contract §4-§5) by content type:
# (body, media, width) -> a float32 matrix, CSR or dense.
FEATURE_DECODERS: dict[str, Callable[[bytes, MediaType, int], sp.csr_matrix | np.ndarray]] = {
    TEXT_CSV: _nonempty(_csv_rows),
    JSON: _nonempty(json_rows),
    JSONLINES: _nonempty(json_rows),
    RECORDIO: _nonempty(_recordio_rows),
}
