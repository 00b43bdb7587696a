"""What the NTM and k-NN formats share: picking a codec from a content-type table, JSON and JSON
Lines bodies of the same objects, and reading the predictions of a JSON or JSON Lines answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from serving import recordio, vectors
from serving.body import iter_json_lines, load_json, type_name, utf8_bytes
from serving.errors import UnprocessableEntity
from serving.mediatypes import JSON, JSONLINES, MediaType

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
C = TypeVar("C")


def pick(table: dict[str, C], media: MediaType, error: type[Exception], what: str) -> C:
    """The table's codec for ``media``; ``error`` (415 or 406) naming the types it has."""
    codec = table.get(media.type)
    if codec is None:
        raise error(f"{media.type} is not {what}; use one of {', '.join(table)}")
    return codec


def _json_body(objs: Sequence[Any], key: str) -> bytes:
    return orjson.dumps({key: objs}, option=_NUMPY)


def _json_lines(objs: Sequence[Any], key: str) -> bytes:
    return b"".join(orjson.dumps(o, option=_NUMPY) + b"\n" for o in objs)


# JSON and JSON Lines bodies of the same objects: {"<key>": [...]} or one object a line.
JSON_WRITERS: dict[str, Callable[[Sequence[Any], str], bytes]] = {
    JSON: _json_body, JSONLINES: _json_lines}


def predictions(
    body: bytes, media: MediaType, max_records: int | None = None
) -> list[tuple[str, dict]]:
    """(name for messages, object) of each prediction in a JSON or JSON Lines response."""
    if media.type == JSON:
        doc = load_json(utf8_bytes(body))
        if not isinstance(doc, dict) or not isinstance(doc.get("predictions"), list):
            raise UnprocessableEntity(
                f'expected {{"predictions": [...]}}, not {vectors.describe(doc)}')
        recordio.check_record_count(len(doc["predictions"]), max_records)
        items = [(f"prediction {i}", p) for i, p in enumerate(doc["predictions"], start=1)]
    else:
        items = []
        for i, p in iter_json_lines(utf8_bytes(body)):
            recordio.check_record_count(len(items) + 1, max_records)
            items.append((f"line {i}", p))
    for what, p in items:
        if not isinstance(p, dict):
            raise UnprocessableEntity(f"{what}: expected an object, not {type_name(p)}")
    return items
