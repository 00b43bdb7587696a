"""Body primitives every wire format shares: strict UTF-8, guarded JSON, line splitting, record
counts and JSON type names for messages.

The text codecs (``codecs``), the NTM/k-NN formats (``formats``, ``vectors``) and the training
data reader (``data``) build on these; none of them depends on another's codec module.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import orjson

from serving import jsondoc
from serving.errors import BadRequest, PayloadTooLarge

# The csv module's per-field limit (128 KiB) is process-wide; documents are limited by
# max_doc_chars instead, so lift it once, here, for requests and training data (serving.data)
# alike (2**31 - 1 fits a C long everywhere).
csv.field_size_limit(2**31 - 1)


BOM = b"\xef\xbb\xbf"


def _decoded(body: bytes) -> str:
    if not body:
        raise BadRequest("the request body is empty")
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 (bad byte at offset {exc.start})") from None


def utf8_text(body: bytes) -> str:
    """Strict UTF-8 decoding (a leading BOM is dropped); BadRequest naming the bad byte offset."""
    text = _decoded(body)
    return text[1:] if text.startswith("\ufeff") else text


def utf8_bytes(body: bytes) -> bytes:
    """The body after :func:`utf8_text`'s checks, still as bytes (a leading BOM dropped): for
    JSON, which orjson parses from bytes without a UTF-8 copy of a ``str`` (and reports the same
    error positions)."""
    _decoded(body)
    data = bytes(body)
    return data[len(BOM):] if data.startswith(BOM) else data


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


def check_json_lines(data: bytes) -> None:
    """The container budget over a whole JSON Lines body (each line is parsed on its own)."""
    try:
        jsondoc.check_containers(data, "the body")
    except jsondoc.JSONError as exc:
        raise PayloadTooLarge(exc.message) from None


BLANK = object()  # what :func:`json_lines` gives for a blank line


def json_lines(data: bytes, keep_blank: bool) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) per line of a JSON Lines body checked by :func:`utf8_bytes`:
    the lines of :func:`split_lines`, each parsed from bytes; a blank line (Unicode white space
    only, as ``str.strip`` sees it) is skipped, or given as :data:`BLANK` with ``keep_blank``."""
    check_json_lines(data)
    lines = data.split(b"\n")
    if len(lines) > 1 and lines[-1] == b"":
        lines.pop()
    if max(map(len, lines)) <= jsondoc.MAX_CONTAINERS:  # no line needs its own container count
        try:  # every line at once (~2x faster); a blank or bad one: the loop below says which
            values = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            pass
        else:
            yield from enumerate(values, start=1)
            return
    for number, line in enumerate(lines, start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():  # ASCII white space; other white space fails to parse, below
            try:
                value = load_json(line, f"line {number}")
            except BadRequest:
                if line.decode("utf-8").strip():
                    raise
            else:
                yield number, value
                continue
        if keep_blank:
            yield number, BLANK


def iter_json_lines(data: bytes) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) per non-blank line of a body checked by :func:`utf8_bytes`."""
    yield from json_lines(data, keep_blank=False)


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
