"""RecordIO framing (what SageMaker's built-in algorithms read and write): uint32 magic
0xCED7230A, uint32 length (little-endian; the top 3 bits are a continuation flag, always 0 here),
the payload (a serialized ``aialgs.data.Record``), then zero padding to a multiple of 4 bytes.

The tensor layout inside the records is ``serving.recordio``'s, which re-exports these names.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from serving import record_pb2
from serving.errors import BadRequest

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_FLAG_MASK = 0xE000_0000
_LENGTH_MASK = 0x1FFF_FFFF
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by payload length % 4
Source = bytes | bytearray | memoryview | BinaryIO


class RecordIOError(BadRequest):
    """Bytes that are not a valid RecordIO-protobuf stream."""


def frame(payload: bytes) -> bytes:
    """One framed record: header, payload, zero padding."""
    if len(payload) > _LENGTH_MASK:
        raise ValueError(f"record of {len(payload)} bytes is too long for RecordIO")
    return _HEADER.pack(MAGIC, len(payload)) + payload + _PAD[len(payload) % 4]


def encode_records(records: Iterable[record_pb2.Record]) -> bytes:
    return b"".join(frame(r.SerializeToString()) for r in records)


def write_records(fp: BinaryIO, records: Iterable[record_pb2.Record]) -> int:
    """Write framed records to a binary file; returns the number of records written."""
    count = 0
    for record in records:
        fp.write(frame(record.SerializeToString()))
        count += 1
    return count


def _check_header(magic: int, word: int, index: int, offset: int) -> int:
    if magic != MAGIC:
        raise RecordIOError(
            f"RecordIO record {index} at byte {offset}: bad magic 0x{magic:08X} "
            f"(expected 0x{MAGIC:08X}); the body is not RecordIO-protobuf"
        )
    if word & _FLAG_MASK:
        raise RecordIOError(
            f"RecordIO record {index} at byte {offset}: continuation flag {word >> 29} is set; "
            "multi-part records are not supported"
        )
    return word & _LENGTH_MASK


def _read_exact(fp: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = fp.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _iter_stream(fp: BinaryIO) -> Iterator[bytes]:
    index, offset = 1, 0
    while True:
        header = _read_exact(fp, _HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: truncated header")
        length = _check_header(*_HEADER.unpack(header), index, offset)
        body = _read_exact(fp, length + (-length % 4))
        if len(body) < length + (-length % 4):
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: truncated record")
        if any(body[length:]):
            raise RecordIOError(f"RecordIO record {index} at byte {offset}: non-zero padding")
        yield body[:length]
        index, offset = index + 1, offset + _HEADER.size + len(body)


def iter_payloads(source: Source) -> Iterator[bytes]:
    """The raw record payloads of a RecordIO byte string or binary file, streamed."""
    if isinstance(source, bytes | bytearray | memoryview):
        return _iter_stream(io.BytesIO(source))
    return _iter_stream(source)


def count_records(source: Source) -> int:
    """Number of records in a RecordIO byte string or file (framing checked, not parsed)."""
    return sum(1 for _ in iter_payloads(source))


def read_records(source: Source) -> Iterator[record_pb2.Record]:
    """Parse every record of a RecordIO-protobuf byte string or binary file, streamed."""
    for index, payload in enumerate(iter_payloads(source), start=1):
        record = record_pb2.Record()
        try:
            record.ParseFromString(payload)
        except Exception:  # DecodeError, or invalid UTF-8 in a string field
            raise RecordIOError(
                f"RecordIO record {index} is not a valid aialgs.data.Record protobuf"
            ) from None
        yield record
