"""Content-Type/Accept parsing and negotiation (RFC 7231) as SageMaker containers need them."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.errors import NotAcceptable, UnsupportedMediaType
from serving.mediatypes import (
    JSON,
    JSONLINES,
    RECORDIO,
    TEXT_CSV,
    TEXT_PLAIN,
    MediaType,
    canonical,
    content_type_for,
    negotiate,
    parse_accept,
    parse_content_type,
    parse_media_type,
)

OUT = [JSON, JSONLINES, TEXT_CSV]


@pytest.mark.parametrize(
    ("header", "essence", "params"),
    [
        ("text/csv", TEXT_CSV, {}),
        ("Text/CSV ; Charset=UTF-8", TEXT_CSV, {"charset": "UTF-8"}),
        ("text/plain;charset=utf8", TEXT_PLAIN, {"charset": "utf8"}),
        ('text/plain; charset="us-ascii"', TEXT_PLAIN, {"charset": "us-ascii"}),
        ("application/json; verbose=true", JSON, {"verbose": "true"}),
        ('application/json; x="a;b, \\"c\\""', JSON, {"x": 'a;b, "c"'}),
        ("application/x-jsonlines", JSONLINES, {}),
        ("application/JSONL", JSONLINES, {}),
        ("application/jsonlines", JSONLINES, {}),
        ("application/x-recordio-protobuf", RECORDIO, {}),
        ("text/csv;", TEXT_CSV, {}),
        ("text/csv; label_size=0; label_size=1", TEXT_CSV, {"label_size": "0"}),
        ("\ttext/csv \t", TEXT_CSV, {}),
    ],
)
def test_parse_content_type(header: str, essence: str, params: dict[str, str]) -> None:
    media = parse_content_type(header)
    assert media.type == essence == media.essence
    assert dict(media.params) == params
    assert media.q == 1.0


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("text", "cannot parse"),
        ("text/", "cannot parse"),
        ("/csv", "cannot parse"),
        ("text/csv; charset", "cannot parse"),
        ('text/csv; charset="utf-8', "cannot parse"),
        ("text/csv junk", "cannot parse"),
        ("text/csv, application/json", "cannot parse"),
        ("*/*", "wildcard"),
        ("text/*", "wildcard"),
        ("text/csv; charset=latin-1", "charset 'latin-1' is not supported"),
        ("text/plain; charset=UTF-16", "not supported"),
    ],
)
def test_parse_content_type_refusals(header: str | None, match: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=match) as info:
        parse_content_type(header)
    assert info.value.status == 415


def test_media_type_value_semantics() -> None:
    a = MediaType(JSON, {"verbose": "true"})
    b = parse_media_type("application/json;verbose=true")
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a.flag("verbose") and a.flag("VERBOSE") and not a.flag("sparse")
    assert a.param("Verbose") == "true" and a.param("x", "d") == "d"
    with pytest.raises(TypeError):
        a.params["verbose"] = "false"  # type: ignore[index]
    assert str(MediaType(TEXT_CSV, {"x": "a b", "y": 'q"'})) == 'text/csv; x="a b"; y="q\\""'
    assert canonical(" Application/X-JSONLines ") == JSONLINES


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.", min_size=1, max_size=8),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
        max_size=4,
    )
)
def test_str_parses_back(params: dict[str, str]) -> None:
    media = MediaType(JSON, params)
    assert parse_media_type(str(media)) == media


def test_content_type_for_drops_private_params() -> None:
    assert content_type_for(MediaType(JSON, {"verbose": "true"}, 0.5)) == "application/json"
    assert content_type_for(parse_content_type("application/jsonl; sparse=true")) == JSONLINES
    assert content_type_for(MediaType(TEXT_CSV, {"label_size": "0"})) == "text/csv; label_size=0"


def test_parse_accept() -> None:
    ranges = parse_accept(
        'application/json; verbose=true; q=0.5; ext=1, text/*;q=0.1, */*;q=0, bad, x/y;a="q,\\"z"'
        ", */html, a/b;q=2, ,"
    )
    assert [(r.type, dict(r.params), r.q) for r in ranges] == [
        (JSON, {"verbose": "true"}, 0.5),
        ("text/*", {}, 0.1),
        ("*/*", {}, 0.0),
        ("x/y", {"a": 'q,"z'}, 1.0),
    ]
    assert parse_accept(None) == [] and parse_accept("") == []


@pytest.mark.parametrize(
    ("accept", "default", "expected"),
    [
        (None, "application/json", "application/json"),
        ("", "text/csv", "text/csv"),
        ("*/*", "application/json; verbose=true", "application/json; verbose=true"),
        ("*/*;q=0.8", "application/jsonlines", "application/jsonlines"),
        ("*/*", "application/x-jsonlines", "application/jsonlines"),
        ("text/csv", "application/json", "text/csv"),
        ("application/json; verbose=true", "text/csv", "application/json; verbose=true"),
        ("application/x-jsonlines", "application/json", "application/jsonlines"),
        ("text/csv;q=0.5, application/jsonlines", "application/json", "application/jsonlines"),
        ("application/*", "application/jsonlines", "application/jsonlines"),
        ("application/*", "text/csv", "application/json"),
        ("text/*, application/json;q=0.9", "application/json", "text/csv"),
        ("application/json;q=0, */*", "application/json", "application/jsonlines"),
        ("*/*;q=0.1, text/csv;q=0.2", "application/json", "text/csv"),
        ("text/csv, application/json", "application/json", "text/csv"),
        ("application/json, text/csv", "text/csv", "application/json"),
        ("image/png, text/csv;q=0.01", "application/json", "text/csv"),
        ("*/*, bad entry", "text/csv", "text/csv"),
    ],
)
def test_negotiate(accept: str | None, default: str, expected: str) -> None:
    media = negotiate(accept, OUT, default)
    assert str(media) == expected


def test_negotiate_keeps_q() -> None:
    assert negotiate("text/csv;q=0.3", OUT, JSON).q == 0.3


@pytest.mark.parametrize(
    ("accept", "default", "match"),
    [
        ("image/png", JSON, "none of the types"),
        ("text/csv;q=0", JSON, "none of the types"),
        ("*/*;q=0", JSON, "none of the types"),
        ("garbage", JSON, "cannot parse Accept"),
        (None, "application/x-recordio-protobuf", "not one this stage writes"),
        ("*/*", "image/png", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
        (None, "not a type", "is invalid"),
    ],
)
def test_negotiate_refusals(accept: str | None, default: str, match: str) -> None:
    with pytest.raises(NotAcceptable, match=match) as info:
        negotiate(accept, OUT, default)
    assert info.value.status == 406


def test_negotiate_ignores_a_bad_default_when_accept_decides() -> None:
    assert negotiate("text/csv", OUT, "image/png").type == TEXT_CSV


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_random_headers_raise_only_4xx(header: str) -> None:
    with contextlib.suppress(UnsupportedMediaType):
        parse_content_type(header)
    with contextlib.suppress(NotAcceptable):
        negotiate(header, OUT, JSON)
    for r in parse_accept(header):
        assert 0.0 <= r.q <= 1.0 and "/" in r.type


def test_content_type_for_writes_only_what_describes_the_answer() -> None:
    assert content_type_for(MediaType(JSON, {"charset": "UTF8", "a": "b" * 9000})) == \
        "application/json; charset=utf-8"
    assert content_type_for(MediaType(TEXT_CSV, {"header": "Absent", "label_size": " 0",
                                                 "x": "y"})) == \
        "text/csv; header=absent; label_size=0"
    assert content_type_for(MediaType(RECORDIO, {"charset": "utf-8"})) == RECORDIO
    assert content_type_for(MediaType(JSONLINES, {"header": "absent"})) == JSONLINES


@pytest.mark.parametrize(("accept", "why"), [
    ("application/json; charset=utf-16", "charset=utf-16 (answers are UTF-8)"),
    ("text/*; charset=latin-1", "charset=latin-1"),
    ("text/csv; header=present", "header=present (CSV answers have no header row)"),
    ("text/csv; label_size=1", "label_size=1 (CSV answers have no label column)"),
])
def test_parameters_an_answer_cannot_meet_are_406(accept: str, why: str) -> None:
    with pytest.raises(NotAcceptable, match=re.escape(why)):
        negotiate(accept, [JSON, TEXT_CSV], JSON)


def test_a_range_with_unmet_parameters_does_not_match() -> None:
    chosen = negotiate("application/json; charset=utf-16, text/csv;q=0.2", [JSON, TEXT_CSV], JSON)
    assert chosen.type == TEXT_CSV
    assert negotiate("text/csv; label_size=0", [JSON, TEXT_CSV], JSON).params == {
        "label_size": "0"}
    with pytest.raises(NotAcceptable, match="the default response type"):
        negotiate(None, [JSON, TEXT_CSV], "text/csv; header=present")
