"""How a batch transform cuts an S3 object into mini-batches (for scripts/localsm/transform.py).

As the CreateTransformJob reference (``TransformInput.SplitType``, ``BatchStrategy``,
``MaxPayloadInMB``; https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformInput.html)
documents it:

- ``SplitType=None``: the whole object is one request.
- ``Line``: a record ends after each ``\\n`` (the last one may lack it); each record keeps its
  bytes as they are in the object, newline included, so a mini-batch is a byte range of the
  object. (Whether SageMaker keeps the newline of a SingleRecord request is UNCONFIRMED; the
  SageMaker Python SDK's local mode keeps it, as we do.)
- ``RecordIO`` (MXNet framing: magic ``0xced7230a``, 29-bit length, data padded to 4 bytes) and
  ``TFRecord`` (8-byte length, 4-byte CRC, data, 4-byte CRC): whole records. "When splitting is
  applied to a binary data format, padding is removed if the value of BatchStrategy is set to
  SingleRecord. Padding is not removed if the value of BatchStrategy is set to MultiRecord."
- ``MultiRecord``: as many consecutive records as fit in ``MaxPayloadInMB`` (MiB; 0 = no limit);
  ``SingleRecord``: one record per request.
- A record (or, with SplitType None, an object) larger than ``MaxPayloadInMB`` fails the job:
  "Exceeding the MaxPayloadInMB limit causes an error. This might happen with a large dataset if
  it can't be split, the SplitType parameter is set to none, or individual records within the
  dataset exceed the limit." (DG batch-transform-errors.)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

RECORDIO_MAGIC = 0xCED7230A
SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
MB = 1024 * 1024


class SplitError(ValueError):
    """An object that cannot be cut as the job asks (bad framing, record over the limit)."""


def record_spans(data: bytes, split_type: str) -> list[tuple[int, int, int]]:
    """(start, end without padding, end with padding) of each record, in order."""
    if split_type == "None":
        return [(0, len(data), len(data))] if data else []
    if split_type == "Line":
        return _line_spans(data)
    if split_type == "RecordIO":
        return _recordio_spans(data)
    if split_type == "TFRecord":
        return _tfrecord_spans(data)
    raise SplitError(f"SplitType {split_type!r} is not one of {', '.join(SPLIT_TYPES)}")


def _line_spans(data: bytes) -> list[tuple[int, int, int]]:
    spans, start, size = [], 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        end = size if end < 0 else end + 1
        spans.append((start, end, end))
        start = end
    return spans


def _recordio_spans(data: bytes) -> list[tuple[int, int, int]]:
    spans, pos, size = [], 0, len(data)
    while pos < size:
        if pos + 8 > size:
            raise SplitError(f"RecordIO: {size - pos} stray bytes at offset {pos}")
        magic, lrecord = struct.unpack_from("<II", data, pos)
        if magic != RECORDIO_MAGIC:
            raise SplitError(f"RecordIO: no record marker at offset {pos}")
        end = pos + 8 + (lrecord & ((1 << 29) - 1))
        padded = end + (-end % 4)
        if end > size:
            raise SplitError(f"RecordIO: the record at offset {pos} runs past the end")
        spans.append((pos, end, min(padded, size)))
        pos = min(padded, size)
    return spans


def _tfrecord_spans(data: bytes) -> list[tuple[int, int, int]]:
    spans, pos, size = [], 0, len(data)
    while pos < size:
        if pos + 12 > size:
            raise SplitError(f"TFRecord: {size - pos} stray bytes at offset {pos}")
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + 12 + length + 4
        if end > size:
            raise SplitError(f"TFRecord: the record at offset {pos} runs past the end")
        spans.append((pos, end, end))
        pos = end
    return spans


def mini_batches(
    data: bytes, split_type: str, strategy: str, payload_mb: int
) -> Iterator[tuple[int, bytes]]:
    """(number of records, request body) for each request the object becomes, in order."""
    limit = payload_mb * MB if payload_mb else None
    spans = record_spans(data, split_type)
    for number, (start, end, padded) in enumerate(spans, 1):
        size = (end if strategy == "SingleRecord" else padded) - start
        if limit is not None and size > limit:
            what = "the object" if split_type == "None" else f"record {number}"
            raise SplitError(
                f"{what} is {size} bytes, over MaxPayloadInMB={payload_mb} ({limit} bytes)"
            )
    if strategy == "SingleRecord" or split_type == "None":
        for start, end, _ in spans:
            yield 1, data[start:end]
        return
    first = last = count = 0
    for start, _, padded in spans:
        if count and limit is not None and padded - first > limit:
            yield count, data[first:last]
            count = 0
        if not count:
            first = start
        count += 1
        last = padded
    if count:
        yield count, data[first:last]
