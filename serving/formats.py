"""The built-in NTM and k-NN wire formats (contract §4-§5), both directions, in one namespace.

Shared by the serving stages and by the NTM/k-NN stand-in containers; the codec tables live in
``ntm_formats`` and ``knn_formats`` (one table per content type per direction).  Every encoder
returns bytes; send them with ``Content-Type: content_type_for(media)`` (private parameters such as
``sparse`` and ``verbose`` dropped).  Decoders raise UnsupportedMediaType for a type the real
algorithm does not read, BadRequest for malformed bodies, UnprocessableEntity for well-formed bodies
of the wrong shape (wrong width, missing fields, another model's output).  Blank lines in CSV and
JSON Lines bodies are skipped; rows and lines are counted from 1 in messages.
"""

from __future__ import annotations

from serving.knn_formats import (
    KNN_INPUT_TYPES,
    KNN_OUTPUT_TYPES,
    KNN_REQUEST_ENCODERS,
    KNN_RESPONSE_DECODERS,
    KNN_RESPONSE_ENCODERS,
    NOT_VERBOSE,
    decode_knn_input,
    decode_knn_output,
    encode_knn_input,
    encode_knn_output,
)
from serving.mediatypes import content_type_for
from serving.ntm_formats import (
    NTM_INPUT_TYPES,
    NTM_OUTPUT_TYPES,
    NTM_REQUEST_ENCODERS,
    NTM_RESPONSE_DECODERS,
    NTM_RESPONSE_ENCODERS,
    decode_ntm_input,
    decode_ntm_output,
    encode_ntm_input,
    encode_ntm_output,
)

__all__ = [
    "KNN_INPUT_TYPES",
    "KNN_OUTPUT_TYPES",
    "KNN_REQUEST_ENCODERS",
    "KNN_RESPONSE_DECODERS",
    "KNN_RESPONSE_ENCODERS",
    "NOT_VERBOSE",
    "NTM_INPUT_TYPES",
    "NTM_OUTPUT_TYPES",
    "NTM_REQUEST_ENCODERS",
    "NTM_RESPONSE_DECODERS",
    "NTM_RESPONSE_ENCODERS",
    "content_type_for",
    "decode_knn_input",
    "decode_knn_output",
    "decode_ntm_input",
    "decode_ntm_output",
    "encode_knn_input",
    "encode_knn_output",
    "encode_ntm_input",
    "encode_ntm_output",
]
