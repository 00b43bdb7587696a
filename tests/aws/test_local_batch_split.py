"""scripts/localsm/batch_split.py: how a transform job cuts an object into mini-batches."""

from __future__ import annotations

import struct

import pytest

from scripts.localsm.batch_split import MB, SplitError, mini_batches, record_spans


def recordio(payload: bytes) -> bytes:
    """One MXNet RecordIO record: magic, length, data, padding to 4 bytes."""
    head = struct.pack("<II", 0xCED7230A, len(payload))
    return head + payload + b"\0" * (-len(payload) % 4)


def tfrecord(payload: bytes) -> bytes:
    return struct.pack("<Q", len(payload)) + b"crc0" + payload + b"crc1"


def test_lines_keep_their_bytes_and_the_last_line_may_lack_a_newline() -> None:
    data = b"one\n\ntwo\r\nthree"
    spans = record_spans(data, "Line")
    assert [data[s:e] for s, e, _ in spans] == [b"one\n", b"\n", b"two\r\n", b"three"]
    assert record_spans(b"", "Line") == []
    assert list(mini_batches(data, "Line", "SingleRecord", 6)) == [
        (1, b"one\n"), (1, b"\n"), (1, b"two\r\n"), (1, b"three"),
    ]  # fmt: skip


def test_multi_record_packs_whole_records_up_to_the_payload_limit() -> None:
    line = b"x" * (300 * 1024 - 1) + b"\n"  # 300 KiB records, 3 fit in 1 MiB
    data = line * 7
    batches = list(mini_batches(data, "Line", "MultiRecord", 1))
    assert [count for count, _ in batches] == [3, 3, 1]
    assert all(len(body) <= MB for _, body in batches)
    assert b"".join(body for _, body in batches) == data  # nothing lost, added or reordered
    assert list(mini_batches(data, "Line", "MultiRecord", 0)) == [(7, data)]  # 0: no limit


def test_a_record_over_the_limit_fails_with_its_number() -> None:
    data = b"short\n" + b"y" * (MB + 1) + b"\n"
    with pytest.raises(SplitError, match=r"record 2 is 1048578 bytes, over MaxPayloadInMB=1"):
        list(mini_batches(data, "Line", "MultiRecord", 1))
    with pytest.raises(SplitError, match="the object is"):
        list(mini_batches(data, "None", "MultiRecord", 1))


def test_split_none_sends_the_whole_object() -> None:
    data = b"a\nb\nc\n"
    assert list(mini_batches(data, "None", "MultiRecord", 6)) == [(1, data)]
    assert list(mini_batches(data, "None", "SingleRecord", 6)) == [(1, data)]


def test_recordio_keeps_padding_for_multi_record_and_drops_it_for_single_record() -> None:
    records = [b"abc", b"defgh", b"ijkl"]
    data = b"".join(recordio(r) for r in records)
    ((count, body),) = list(mini_batches(data, "RecordIO", "MultiRecord", 6))
    assert (count, body) == (3, data)
    singles = [body for _, body in mini_batches(data, "RecordIO", "SingleRecord", 6)]
    assert singles == [recordio(r)[: 8 + len(r)] for r in records]
    with pytest.raises(SplitError, match="no record marker at offset 0"):
        record_spans(b"\0" * 12, "RecordIO")
    with pytest.raises(SplitError, match="runs past the end"):
        record_spans(data[:-2], "RecordIO")


def test_tfrecord_records() -> None:
    data = tfrecord(b"first") + tfrecord(b"second!")
    spans = record_spans(data, "TFRecord")
    assert [data[s:e] for s, e, _ in spans] == [tfrecord(b"first"), tfrecord(b"second!")]
    with pytest.raises(SplitError, match="runs past the end"):
        record_spans(data[:-1], "TFRecord")


def test_unknown_split_type() -> None:
    with pytest.raises(SplitError, match="SplitType 'Csv'"):
        record_spans(b"x", "Csv")
