"""Text request decoding and classifier response encoding."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.codecs import decode_texts, encode_classify
from serving.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    ServingError,
    UnsupportedMediaType,
)
from serving.mediatypes import (
    JSON,
    JSONLINES,
    RECORDIO,
    TEXT_CSV,
    TEXT_PLAIN,
    MediaType,
    parse_content_type,
)

SECRET = "SECRET-7f3a"
LIMITS = {"max_records": 100, "max_doc_chars": 1000}
# Any text a client can send: valid Unicode without surrogates.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def decode(body: bytes | str, media: str, **kw: object) -> list[str]:
    data = body.encode("utf-8") if isinstance(body, str) else body
    parsed = parse_content_type(media) if ";" in media else MediaType(media)
    return decode_texts(data, parsed, **{**LIMITS, **kw})  # type: ignore[arg-type]


# --- text/plain --------------------------------------------------------------------------------


def test_plain_whole_body_is_one_document() -> None:
    assert decode("a\nb,c\n\n", TEXT_PLAIN) == ["a\nb,c\n\n"]
    assert decode("\ufeffhello", TEXT_PLAIN) == ["hello"]


def test_plain_lines_keep_one_record_per_line() -> None:
    assert decode("a\r\n\n  \nb\n", TEXT_PLAIN, lines_are_records=True) == ["a", "", "  ", "b"]
    assert decode("a\nb", TEXT_PLAIN, lines_are_records=True) == ["a", "b"]
    assert decode("\n", TEXT_PLAIN, lines_are_records=True) == [""]
    assert decode("a\n\n", TEXT_PLAIN, lines_are_records=True) == ["a", ""]
    assert decode("a\x0bb\u2028c\n", TEXT_PLAIN, lines_are_records=True) == ["a\x0bb\u2028c"]


@pytest.mark.parametrize("media", [TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES])
def test_empty_body_is_bad_request(media: str) -> None:
    with pytest.raises(BadRequest, match="empty"):
        decode(b"", media)


def test_blank_plain_document_is_bad_request() -> None:
    with pytest.raises(BadRequest, match="empty"):
        decode(" \n\t", TEXT_PLAIN)


@pytest.mark.parametrize("media", [TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES])
def test_non_utf8_is_bad_request(media: str) -> None:
    with pytest.raises(BadRequest, match=r"not valid UTF-8 \(bad byte at offset 3\)"):
        decode(b'"ab\xff"', media)


# --- text/csv ----------------------------------------------------------------------------------


def test_csv_first_column_with_quotes_and_newlines() -> None:
    body = 'plain,1\n"with, comma",2\n\n"multi\nline ""quoted""",3\r\nlast'
    assert decode(body, TEXT_CSV) == ["plain", "with, comma", 'multi\nline "quoted"', "last"]
    assert decode("a\n\nb\n", TEXT_CSV, lines_are_records=True) == ["a", "", "b"]


def test_csv_header_parameter_rfc4180() -> None:
    """RFC 4180 section 3: ``header=present|absent``; with a header, the ``text`` column."""
    body = 'id,text,title\r\n7,"first, doc",a\r\n3,second doc,b\r\n9,"third\ndoc",c\r\n'
    assert decode(body, "text/csv; header=present") == ["first, doc", "second doc", "third\ndoc"]
    assert decode(body, 'text/csv; header="Present"; charset=utf-8')[0] == "first, doc"
    # No parameter, or header=absent: no header row, the first column (our documented default).
    assert decode(body, "text/csv") == ["id", "7", "3", "9"]
    assert decode(body, "text/csv; header=absent") == ["id", "7", "3", "9"]
    # Blank rows in batch mode stay empty documents after the header; a blank line before the
    # header is skipped.
    assert decode("\ntext\na\n\nb\n", "text/csv; header=present", lines_are_records=True) == [
        "a", "", "b"]
    assert decode(" Text ,label\nhello,x\n", "text/csv; header=present") == ["hello"]


@pytest.mark.parametrize(("body", "media", "error", "match"), [
    ("id,body\n1,x\n", "text/csv; header=present", BadRequest, 'no "text" column'),
    ("id,text\n1\n", "text/csv; header=present", BadRequest, "line 2 has 1 fields"),
    ("text\n", "text/csv; header=present", BadRequest, "no documents"),
    ("a\n", "text/csv; header=yes", UnsupportedMediaType, "header='yes'"),
])
def test_csv_header_errors(body: str, media: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        decode(body, media)


def test_malformed_csv_names_the_line() -> None:
    with pytest.raises(BadRequest, match="malformed CSV at line 2") as info:
        decode(f'ok\n"{SECRET}"x\n', TEXT_CSV)
    assert SECRET not in info.value.message
    with pytest.raises(BadRequest, match="malformed CSV"):
        decode(f'ok\n"{SECRET}', TEXT_CSV)


def test_csv_field_over_default_limit_is_read() -> None:
    big = "x" * 200_000
    assert decode(big, TEXT_CSV, max_doc_chars=300_000) == [big]


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"instances": ["a", {"text": "b", "id": 7}]},
        ["a", {"text": "b"}],
    ],
)
def test_json_forms(doc: object) -> None:
    assert decode(json.dumps(doc), JSON) == ["a", "b"]


def test_json_single_forms() -> None:
    assert decode('"just text"', JSON) == ["just text"]
    assert decode('{"text": "one"}', JSON) == ["one"]
    assert decode('\ufeff{"instances": ["bom"]}', JSON) == ["bom"]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('{"instances": ["a", 3]}', "instance 2: expected a string .* not a number"),
        ('{"instances": [{"txt": "a"}]}', 'instance 1: the object has no "text" field'),
        ('{"instances": [{"text": null}]}', '"text" must be a string, not null'),
        ('{"instances": "a"}', '"instances" must be an array, not a string'),
        ('{"instances": []}', "no instances"),
        ("[]", "no instances"),
        ("42", "not a number"),
        ('{"other": 1}', "not an object"),
        ('{"instances": ["a"], "text": "b"}', "both"),
        ('{"instances": ["' + SECRET, "malformed JSON in the body: .* line 1 column"),
        ('{"instances": ["' + SECRET + '"]} x', "malformed JSON"),
    ],
)
def test_json_errors(body: str, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        decode(body, JSON)
    assert SECRET not in info.value.message


# --- JSON Lines --------------------------------------------------------------------------------


def test_json_lines() -> None:
    body = '"a"\n\n{"text": "b"}\r\n  \n"c"'
    assert decode(body, JSONLINES) == ["a", "b", "c"]
    assert decode(body, "application/x-jsonlines") == ["a", "b", "c"]
    assert decode(body, JSONLINES, lines_are_records=True) == ["a", "", "b", "", "c"]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('"a"\n{"text": 5}\n', 'line 2: "text" must be a string'),
        ('"a"\n\n[1]\n', "line 3: expected a string"),
        ('"a"\n"' + SECRET + "\n", "malformed JSON in line 2"),
        ("\n\n", "no documents"),
    ],
)
def test_json_lines_errors(body: str, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        decode(body, JSONLINES)
    assert SECRET not in info.value.message


# --- limits and types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "media", "kw"),
    [
        ("a\nb\nc\n", TEXT_PLAIN, {"lines_are_records": True}),
        ("a\nb\nc\n", TEXT_CSV, {}),
        ('["a", "b", "c"]', JSON, {}),
        ('"a"\n"b"\n"c"\n', JSONLINES, {}),
    ],
)
def test_too_many_records(body: str, media: str, kw: dict) -> None:
    assert len(decode(body, media, max_records=3, **kw)) == 3
    with pytest.raises(PayloadTooLarge, match="3 records; the limit is 2"):
        decode(body, media, max_records=2, **kw)


@pytest.mark.parametrize("media", [TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES])
def test_document_too_long(media: str) -> None:
    doc = "x" * 11
    body = {TEXT_PLAIN: doc, TEXT_CSV: doc, JSON: json.dumps([doc]), JSONLINES: json.dumps(doc)}
    assert decode(body[media], media, max_doc_chars=11) == [doc]
    with pytest.raises(PayloadTooLarge, match="record 1 has 11 characters; the limit is 10"):
        decode(body[media], media, max_doc_chars=10)


def test_csv_only_the_first_column_counts() -> None:
    assert decode("ok," + "y" * 200_000, TEXT_CSV, max_doc_chars=10) == ["ok"]
    with pytest.raises(PayloadTooLarge, match="record 1 has 200000 characters"):
        decode("y" * 200_000 + ",ok", TEXT_CSV, max_doc_chars=10)


@pytest.mark.parametrize("media", [RECORDIO, "image/png", "application/xml"])
def test_unsupported_input_types(media: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode("a", media)


# --- properties --------------------------------------------------------------------------------


def _csv_body(docs: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([d, i] for i, d in enumerate(docs))
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(st.lists(texts, min_size=1, max_size=8))
def test_round_trip_every_format(docs: list[str]) -> None:
    assert decode(json.dumps({"instances": docs}), JSON) == docs
    assert decode(orjson.dumps([{"text": d} for d in docs]), JSON) == docs
    assert decode("\n".join(json.dumps(d) for d in docs), JSONLINES) == docs
    assert decode(_csv_body(docs), TEXT_CSV) == docs
    if all("\n" not in d and "\r" not in d for d in docs):
        lines = "".join(d + "\n" for d in docs)
        assert decode(lines, TEXT_PLAIN, lines_are_records=True) == docs
    if docs[0].strip():
        assert decode(docs[0], TEXT_PLAIN) == [docs[0].removeprefix("\ufeff")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.sampled_from([TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES]))
def test_random_bytes_raise_only_serving_errors(body: bytes, media: str) -> None:
    for lines in (False, True):
        with contextlib.suppress(ServingError):
            decode(body, media, lines_are_records=lines, max_records=5, max_doc_chars=20)


# --- classifier output -------------------------------------------------------------------------

NAMES = ["sci.space", "rec.autos", 'talk, "quoted"']


def _top() -> tuple[np.ndarray, np.ndarray]:
    return np.array([[0, 2, 1], [2, 1, 0]]), np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])


def test_classify_json() -> None:
    idx, p = _top()
    doc = orjson.loads(encode_classify(NAMES, idx, p, MediaType(JSON)))
    assert doc == {
        "predictions": [
            {
                "label": "sci.space",
                "probability": 0.7,
                "top_k": [
                    {"label": "sci.space", "probability": 0.7},
                    {"label": 'talk, "quoted"', "probability": 0.2},
                    {"label": "rec.autos", "probability": 0.1},
                ],
            },
            {
                "label": 'talk, "quoted"',
                "probability": 0.5,
                "top_k": [
                    {"label": 'talk, "quoted"', "probability": 0.5},
                    {"label": "rec.autos", "probability": 0.3},
                    {"label": "sci.space", "probability": 0.2},
                ],
            },
        ]
    }


def test_classify_json_lines_and_csv() -> None:
    idx, p = _top()
    body = encode_classify(NAMES, idx, p.astype(np.float32), MediaType(JSONLINES))
    assert body.endswith(b"\n") and body.count(b"\n") == 2
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert [r["label"] for r in rows] == ["sci.space", 'talk, "quoted"']
    assert rows[0]["probability"] == 0.7  # float32 noise rounded away
    csv_body = encode_classify(NAMES, idx, p, MediaType(TEXT_CSV)).decode()
    assert csv_body == 'sci.space,0.7\n"talk, ""quoted""",0.5\n'
    assert list(csv.reader(io.StringIO(csv_body))) == [["sci.space", "0.7"], [NAMES[2], "0.5"]]


def test_classify_refusals() -> None:
    idx, p = _top()
    with pytest.raises(NotAcceptable):
        encode_classify(NAMES, idx, p, MediaType(RECORDIO))
    with pytest.raises(ValueError):
        encode_classify(NAMES, idx, p[:, :2], MediaType(JSON))
    with pytest.raises(IndexError):
        encode_classify(NAMES, idx + 5, p, MediaType(JSON))


def test_json_lines_null_is_not_a_blank_line() -> None:
    with pytest.raises(BadRequest, match=r"line 2: expected a string .* not null"):
        decode('"a"\nnull\n', JSONLINES, lines_are_records=True)
