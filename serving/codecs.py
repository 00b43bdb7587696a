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
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from serving import jsondoc
from serving.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from serving.mediatypes import JSON, JSONLINES, TEXT_CSV, TEXT_PLAIN, MediaType

TEXT_INPUT_TYPES = (TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES)
CLASSIFY_OUTPUT_TYPES = (JSON, JSONLINES, TEXT_CSV)
PROBABILITY_DECIMALS = 6
# The csv module's per-field limit (128 KiB) is process-wide; documents are limited by
# max_doc_chars instead, so lift it once, here, for requests and training data (serving.data)
# alike (2**31 - 1 fits a C long everywhere).
csv.field_size_limit(2**31 - 1)


# --- shared helpers ----------------------------------------------------------------------------


def utf8_text(body: bytes) -> str:
    """Strict UTF-8 decoding (a leading BOM is dropped); BadRequest naming the bad byte offset."""
    if not body:
        raise BadRequest("the request body is empty")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 (bad byte at offset {exc.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def load_json(data: bytes | str, where: str = "the body") -> Any:
    """Parse with the shared depth guard; BadRequest giving the position, never the text."""
    try:
        return jsondoc.loads(data, where)
    except jsondoc.JSONError as exc:
        raise (PayloadTooLarge if exc.too_large else BadRequest)(exc.message) from None


def split_lines(text: str, keep_blank: bool) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs; one final newline does not start a new line.

    Lines are split on ``\\n`` only and lose one trailing ``\\r``.  Blank lines are skipped unless
    ``keep_blank``.
    """
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if keep_blank or line.strip():
            yield number, line


def check_json_lines(text: str) -> None:
    """The container budget over a whole JSON Lines body (each line is parsed on its own)."""
    try:
        jsondoc.check_containers(text, "the body")
    except jsondoc.JSONError as exc:
        raise PayloadTooLarge(exc.message) from None


def iter_json_lines(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) per non-blank line."""
    check_json_lines(text)
    for number, line in split_lines(text, keep_blank=False):
        yield number, load_json(line, f"line {number}")


def type_name(value: object) -> str:
    """JSON's name for a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_count(count: int, max_records: int) -> None:
    if count > max_records:
        raise PayloadTooLarge(f"the request has {count} records; the limit is {max_records}")


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


def _json_texts(text: str, max_records: int) -> list[str]:
    doc = load_json(text)
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


def _csv_texts(text: str, keep_blank: bool, max_records: int, header: bool = False) -> list[str]:
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
    if media.type not in TEXT_INPUT_TYPES:
        raise UnsupportedMediaType(
            f"{media.type} is not a text input type; send one of {', '.join(TEXT_INPUT_TYPES)}"
        )
    text = utf8_text(body)
    if media.type == TEXT_PLAIN:
        if lines_are_records:
            check_count(text.count("\n") + 1 - text.endswith("\n"), max_records)
            docs = [line for _, line in split_lines(text, keep_blank=True)]
        else:
            if not text.strip():
                raise BadRequest("the document is empty")
            docs = [text]
    elif media.type == TEXT_CSV:
        docs = _csv_texts(text, lines_are_records, max_records, csv_has_header(media))
    elif media.type == JSON:
        docs = _json_texts(text, max_records)
    else:
        check_json_lines(text)
        docs = []
        for number, line in split_lines(text, keep_blank=lines_are_records):
            value = load_json(line, f"line {number}") if line.strip() else ""
            docs.append(_text_of(value, f"line {number}"))
            check_count(len(docs), max_records)
    if not docs:
        raise BadRequest("the request holds no documents")
    for i, doc in enumerate(docs, start=1):
        if len(doc) > max_doc_chars:
            raise PayloadTooLarge(
                f"record {i} has {len(doc)} characters; the limit is {max_doc_chars}"
            )
    return docs


# --- classifier output -------------------------------------------------------------------------


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
    if media.type not in CLASSIFY_OUTPUT_TYPES:
        raise NotAcceptable(
            f"{media.type} is not a classifier output type; "
            f"accept one of {', '.join(CLASSIFY_OUTPUT_TYPES)}"
        )
    idx = np.asarray(top_idx)
    prob = np.asarray(top_p, dtype=np.float64)
    if idx.ndim != 2 or idx.shape != prob.shape or idx.shape[1] < 1:
        raise ValueError(f"top_idx {idx.shape} and top_p {prob.shape} must be the same (n, k>=1)")
    names = np.asarray(list(class_names), dtype=object)
    label_rows = names[idx].tolist()  # IndexError for an index outside class_names
    prob_rows = np.round(prob, PROBABILITY_DECIMALS).tolist()
    if media.type == TEXT_CSV:
        if explanations is not None:
            raise NotAcceptable("text/csv cannot carry explanations; accept application/json")
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(
            (labels[0], probs[0]) for labels, probs in zip(label_rows, prob_rows, strict=True)
        )
        return out.getvalue().encode("utf-8")
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
    if media.type == JSON:
        return orjson.dumps({"predictions": predictions})
    return b"".join(orjson.dumps(p) + b"\n" for p in predictions)
