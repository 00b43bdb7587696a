"""Text request bodies in, classifier answers out, and the JSON helpers formats.py shares.

Input formats of :func:`decode_texts`:

- ``text/plain``: the whole body is one document.  With ``lines_are_records`` (batch transform,
  ``SplitType=Line``) every line is a document, split on ``\\n`` only (a ``\\r`` before it is
  dropped); one final newline ends the last line rather than starting a new one, and an empty or
  blank line is kept as an empty (or blank) document so the output keeps one line per input line.
- ``text/csv``: RFC 4180, one record per row (quoted fields may hold commas, quotes and newlines);
  blank rows are skipped, or are empty documents with ``lines_are_records``.  RFC 4180's optional
  ``header`` parameter (section 3: ``header=present|absent``; RFC 7111 section 3 repeats it)
  says whether the first row is a header.  ``header=present``: the text is the column named
  ``text`` (the training CSV's convention), rows after the header in order.  Absent or
  ``header=absent`` (RFC 4180 leaves the default to the implementation; ours is absent, the
  form SageMaker's own algorithms read): no header, the text is the first column.
- ``application/json``: ``{"instances": [...]}`` whose items are strings or ``{"text": ...}``
  objects, or a bare string, a bare ``{"text": ...}`` object, or a bare list of items.
- JSON Lines: one JSON string or ``{"text": ...}`` object per line; blank lines are skipped, or are
  empty documents with ``lines_are_records``.

A leading UTF-8 byte order mark is ignored.  Error messages name the record or line (counted from 1)
and never quote the request text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from serving.body import (
    BLANK,
    check_count,
    json_lines,
    load_json,
    split_lines,
    type_name,
    utf8_bytes,
    utf8_text,
)
from serving.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from serving.mediatypes import JSON, JSONLINES, TEXT_CSV, TEXT_PLAIN, MediaType

PROBABILITY_DECIMALS = 6


# --- text input --------------------------------------------------------------------------------


def _text_of(item: object, what: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        text = item.get("text")
        if isinstance(text, str):
            return text
        if "text" not in item:
            raise BadRequest(f'{what}: the object has no "text" field')
        raise BadRequest(f'{what}: "text" must be a string, not {type_name(text)}')
    raise BadRequest(
        f'{what}: expected a string or a {{"text": ...}} object, not {type_name(item)}'
    )


TEXT_COLUMN = "text"


def csv_has_header(media: MediaType) -> bool:
    """RFC 4180 section 3: text/csv parameter ``header`` is ``present`` or ``absent`` (default)."""
    value = media.param("header")
    if value is None or value.strip().lower() == "absent":
        return False
    if value.strip().lower() == "present":
        return True
    raise UnsupportedMediaType(
        f"text/csv parameter header={value[:40]!r} is not 'present' or 'absent' (RFC 4180)")


def _text_column(header: list[str]) -> int:
    names = [name.strip().lower() for name in header]
    if TEXT_COLUMN not in names:
        raise BadRequest(f'the CSV header (header=present) has no "{TEXT_COLUMN}" column; '
                         f"it has {len(header)} columns")
    return names.index(TEXT_COLUMN)


def _csv_texts(text: str, media: MediaType, max_records: int, keep_blank: bool) -> list[str]:
    header = csv_has_header(media)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    docs: list[str] = []
    column = 0 if not header else None
    try:
        for row in reader:
            if column is None:  # the header row (blank lines before it are skipped)
                if row:
                    column = _text_column(row)
                continue
            if not row and not keep_blank:
                continue  # a blank line
            if row and column >= len(row):
                raise BadRequest(f"CSV line {reader.line_num} has {len(row)} fields; the "
                                 f'"{TEXT_COLUMN}" column is field {column + 1}')
            docs.append(row[column] if row else "")
            check_count(len(docs), max_records)
    except csv.Error as exc:
        raise BadRequest(f"malformed CSV at line {reader.line_num}: {exc}") from None
    return docs


def _json_texts(data: bytes, media: MediaType, max_records: int, keep_blank: bool) -> list[str]:
    doc = load_json(data)
    if isinstance(doc, dict) and "instances" in doc:
        if "text" in doc:
            raise BadRequest('the JSON object has both "instances" and "text"')
        items = doc["instances"]
        if not isinstance(items, list):
            raise BadRequest(f'"instances" must be an array, not {type_name(items)}')
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, str) or (isinstance(doc, dict) and "text" in doc):
        items = [doc]
    else:
        raise BadRequest(
            'expected {"instances": [...]}, a string, a {"text": ...} object or an array, '
            f"not {type_name(doc)}"
        )
    if not items:
        raise BadRequest("the request holds no instances")
    check_count(len(items), max_records)
    return [_text_of(item, f"instance {i}") for i, item in enumerate(items, start=1)]


def _plain_texts(text: str, media: MediaType, max_records: int, keep_blank: bool) -> list[str]:
    if keep_blank:  # lines are records
        check_count(text.count("\n") + 1 - text.endswith("\n"), max_records)
        return [line for _, line in split_lines(text, keep_blank=True)]
    if not text.strip():
        raise BadRequest("the document is empty")
    return [text]


def _jsonlines_texts(data: bytes, media: MediaType, max_records: int,
                     keep_blank: bool) -> list[str]:
    docs = []
    for number, value in json_lines(data, keep_blank=keep_blank):
        docs.append("" if value is BLANK else _text_of(value, f"line {number}"))
        check_count(len(docs), max_records)
    return docs


# One decoder per request content type (as sagemaker-inference's decoder._decoder_map): the body
# (valid UTF-8 without a BOM: as bytes for the JSON types, which orjson parses from bytes
# (body.utf8_bytes), else as text (body.utf8_text)), its media type (for parameters), the record
# limit, and whether blank lines are kept as records.
TextDecoder = Callable[[Any, MediaType, int, bool], list[str]]
BYTES_INPUT = frozenset({JSON, JSONLINES})
TEXT_DECODERS: dict[str, TextDecoder] = {
    TEXT_PLAIN: _plain_texts,
    TEXT_CSV: _csv_texts,
    JSON: _json_texts,
    JSONLINES: _jsonlines_texts,
}
TEXT_INPUT_TYPES = tuple(TEXT_DECODERS)


def decode_texts(
    body: bytes,
    media: MediaType,
    *,
    max_records: int,
    max_doc_chars: int,
    lines_are_records: bool = False,
) -> list[str]:
    """The documents in a request body (see the module docstring for the formats).

    Raises UnsupportedMediaType for other types, BadRequest for an empty, non-UTF-8 or malformed
    body, PayloadTooLarge for more than ``max_records`` records or a longer document.
    """
    decoder = TEXT_DECODERS.get(media.type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"{media.type} is not a text input type; send one of {', '.join(TEXT_INPUT_TYPES)}"
        )
    data = utf8_bytes(body) if media.type in BYTES_INPUT else utf8_text(body)
    docs = decoder(data, media, max_records, lines_are_records)
    if not docs:
        raise BadRequest("the request holds no documents")
    for i, doc in enumerate(docs, start=1):
        if len(doc) > max_doc_chars:
            raise PayloadTooLarge(
                f"record {i} has {len(doc)} characters; the limit is {max_doc_chars}"
            )
    return docs


# --- classifier output -------------------------------------------------------------------------


Rows = list[list]
Explanations = Sequence[dict] | None  # serving.explain, one per document


def _classify_csv(label_rows: Rows, prob_rows: Rows, explanations: Explanations) -> bytes:
    if explanations is not None:
        raise NotAcceptable("text/csv cannot carry explanations; accept application/json")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        (labels[0], probs[0]) for labels, probs in zip(label_rows, prob_rows, strict=True)
    )
    return out.getvalue().encode("utf-8")


def _predictions(label_rows: Rows, prob_rows: Rows, explanations: Explanations) -> list[dict]:
    predictions = [
        {
            "label": labels[0],
            "probability": probs[0],
            "top_k": [
                {"label": name, "probability": p} for name, p in zip(labels, probs, strict=True)
            ],
        }
        for labels, probs in zip(label_rows, prob_rows, strict=True)
    ]
    if explanations is not None:
        for prediction, explanation in zip(predictions, explanations, strict=True):
            prediction["explanation"] = explanation
    return predictions


def _classify_json(label_rows: Rows, prob_rows: Rows, explanations: Explanations) -> bytes:
    return orjson.dumps({"predictions": _predictions(label_rows, prob_rows, explanations)})


def _classify_jsonlines(label_rows: Rows, prob_rows: Rows, explanations: Explanations) -> bytes:
    predictions = _predictions(label_rows, prob_rows, explanations)
    return b"".join(orjson.dumps(p) + b"\n" for p in predictions)


# One encoder per response content type (as sagemaker-inference's encoder._encoder_map), in the
# order content negotiation breaks ties in.
CLASSIFY_ENCODERS: dict[str, Callable[[Rows, Rows, Explanations], bytes]] = {
    JSON: _classify_json,
    JSONLINES: _classify_jsonlines,
    TEXT_CSV: _classify_csv,
}
CLASSIFY_OUTPUT_TYPES = tuple(CLASSIFY_ENCODERS)


def encode_classify(
    class_names: Sequence[str], top_idx: np.ndarray, top_p: np.ndarray, media: MediaType,
    explanations: Sequence[dict] | None = None,
) -> bytes:
    """Top-k classes per document, best first, as JSON, JSON Lines or CSV (``label,probability``).

    Probabilities are rounded to 6 decimal places.  JSON:
    ``{"predictions": [{"label", "probability", "top_k": [{"label", "probability"}, ...]}]}``;
    JSON Lines: one prediction object per line; CSV: the best label and its probability.
    ``explanations`` (serving.explain, one per document) become each prediction's
    ``"explanation"``; CSV cannot carry them (NotAcceptable).
    """
    encoder = CLASSIFY_ENCODERS.get(media.type)
    if encoder is None:
        raise NotAcceptable(
            f"{media.type} is not a classifier output type; "
            f"accept one of {', '.join(CLASSIFY_OUTPUT_TYPES)}"
        )
    idx = np.asarray(top_idx)
    prob = np.asarray(top_p, dtype=np.float64)
    if idx.ndim != 2 or idx.shape != prob.shape or idx.shape[1] < 1:
        raise ValueError(f"top_idx {idx.shape} and top_p {prob.shape} must be the same (n, k>=1)")
    names = class_names if isinstance(class_names, list) else list(class_names)
    # IndexError for an index outside class_names (no object array built per request)
    label_rows = [[names[i] for i in row] for row in idx.tolist()]
    prob_rows = np.round(prob, PROBABILITY_DECIMALS).tolist()
    return encoder(label_rows, prob_rows, explanations)
