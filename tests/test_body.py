"""serving.body: JSON Lines parsed from bytes give what the str path gave, errors included."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from serving.body import (
    BLANK,
    json_lines,
    load_json,
    split_lines,
    utf8_bytes,
    utf8_text,
)
from serving.errors import BadRequest, PayloadTooLarge

# Lines, one per item: JSON, ASCII and Unicode white space, a \r before the newline, bad JSON
# after non-ASCII text (error columns), white space around values.
PIECES = ['"plain"', '{"text": "caf\u00e9 \u20ac \U0001f600"}', "", "   ", "\t", "\u00a0",
          "\u2028 \u3000", "\x1c\x1f", '\u00a0"after nbsp"', '  ["x"]  ', '"\u00e9", x', "nul",
          '"line"\r', "\r", '{"a": 1,}', '"\\u00e9\\n"']


def str_path(text: str, keep_blank: bool) -> list[tuple[int, Any]]:
    """The reference: lines of the decoded text, each parsed from str (the code before)."""
    out = []
    for number, line in split_lines(text, keep_blank=keep_blank):
        out.append((number, load_json(line, f"line {number}") if line.strip() else BLANK))
    return out


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except (BadRequest, PayloadTooLarge) as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("keep_blank", [False, True])
def test_bytes_path_equals_the_str_path(keep_blank: bool) -> None:
    checked = 0
    for a, b, c in itertools.product(PIECES, repeat=3):
        for ending in ("", "\n", "\r\n", "\n\n"):
            body = ("\ufeff" if checked % 7 == 0 else "") + "\n".join((a, b, c)) + ending
            raw = body.encode("utf-8")
            want = outcome(lambda r: str_path(utf8_text(r), keep_blank), raw)
            got = outcome(lambda r: list(json_lines(utf8_bytes(r), keep_blank)), raw)
            assert got == want, body
            checked += 1
    assert checked == len(PIECES) ** 3 * 4


def test_utf8_bytes_checks_as_utf8_text() -> None:
    for body in (b"", b"\xff", b"ok \xc3", b"\xef\xbb\xbf\"x\"", "\ufeff\ufeff".encode()):
        assert outcome(lambda b: utf8_bytes(b).decode(), body) == outcome(utf8_text, body)
