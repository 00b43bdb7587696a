"""``application/x-npy`` bodies: NumPy's own ``.npy`` format, the SageMaker Python SDK's default
serializer for NumPy arrays (``sagemaker.serializers.NumpySerializer``).

Encoding is AWS's reference, the SageMaker inference toolkit's encoder (``sagemaker_inference.
encoder``: ``np.save`` to a buffer).  Decoding is not: the toolkit's ``decoder._npy_to_numpy``
calls ``np.load(..., allow_pickle=True)``, which runs any pickle a client sends (sagemaker-inference
1.10.1, src/sagemaker_inference/decoder.py), so request bodies are read here instead: the header is
parsed with ``numpy.lib.format`` (format versions 1.0 and 2.0), only numeric dtypes are accepted,
and the declared shape must match the bytes that follow before any array is made - a header
declaring a huge shape costs nothing.
"""

from __future__ import annotations

import io
import math

import numpy as np
from sagemaker_inference import content_types, encoder

from serving import vectors
from serving.errors import BadRequest, PayloadTooLarge, UnprocessableEntity

NPY = content_types.NPY  # "application/x-npy"
_MAGIC = b"\x93NUMPY"


def encode(array: np.ndarray) -> bytes:
    """``array`` as an ``.npy`` body (the toolkit's encoder, i.e. ``np.save``)."""
    return encoder.encode(np.ascontiguousarray(array), NPY)


def decode_rows(body: bytes, n_cols: int | None, max_values: int, max_records: int | None,
                ) -> np.ndarray:
    """A float32 (n, d) array from an ``.npy`` body: 2-D, or 1-D for one record.

    BadRequest for anything but a numeric ``.npy`` (pickles and object arrays included),
    PayloadTooLarge past ``max_values`` values or ``max_records`` rows, UnprocessableEntity for a
    width other than ``n_cols`` or a non-finite value.
    """
    if not body.startswith(_MAGIC):
        raise BadRequest("the body is not a NumPy .npy array (no \\x93NUMPY magic)")
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise BadRequest(f".npy format version {version[0]}.{version[1]} is not read; "
                             "send 1.0 or 2.0 (what np.save writes)")
    except BadRequest:
        raise
    except Exception as exc:  # numpy's header parser: ValueError, SyntaxError, TokenError, ...
        raise BadRequest(f"malformed .npy header ({type(exc).__name__})") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise BadRequest(f".npy dtype {str(dtype)[:40]} is not numeric; send float32 or float64")
    if len(shape) not in (1, 2):
        raise UnprocessableEntity(f"the .npy array has {len(shape)} dimensions; send 2 "
                                  "(one row a record) or 1 (one record)")
    if any(d < 0 for d in shape):
        raise BadRequest(f"the .npy header declares a negative dimension: {shape}")
    count = math.prod(shape)  # Python ints: a huge declared shape cannot wrap around
    if count > max_values or max(shape, default=0) > max_values:  # (0, 2**62): no values
        raise PayloadTooLarge(f"the .npy array of shape {shape} holds {count} values; the "
                              f"limit is {max_values}")
    data = memoryview(body)[stream.tell():]
    if len(data) != count * dtype.itemsize:
        raise BadRequest(f"the .npy header declares {count * dtype.itemsize} data bytes; the "
                         f"body has {len(data)}")
    flat = np.frombuffer(data, dtype=dtype, count=count)
    rows = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    if rows.shape[0] == 0:
        raise BadRequest("the .npy array holds no records")
    if max_records is not None and rows.shape[0] > max_records:
        raise PayloadTooLarge(f"{rows.shape[0]} records; the limit is {max_records}")
    if n_cols is not None and rows.shape[1] != n_cols:
        raise UnprocessableEntity(f"the .npy rows have {rows.shape[1]} values; expected {n_cols}")
    return np.array(vectors.as_float32(rows, "the .npy array"), order="C")  # writable
