"""Errors a client may see. Each carries its HTTP status and a short machine-readable code.

Anything else raised while serving becomes a 500 that carries only the request id; the
traceback goes to the log, never to the client.
"""

from __future__ import annotations


class ServingError(Exception):
    """A request the server refuses, with the status and message the client gets."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServingError):
    """Malformed, empty or undecodable input."""

    status = 400
    code = "bad_request"


class PayloadTooLarge(ServingError):
    """The body, the number of records or a document is over its limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServingError):
    """The Content-Type (or its charset) is not one this stage reads."""

    status = 415
    code = "unsupported_media_type"


class NotAcceptable(ServingError):
    """No media type in Accept is one this stage writes."""

    status = 406
    code = "not_acceptable"


class UnprocessableEntity(ServingError):
    """Well-formed input of the wrong shape (e.g. a topic vector of the wrong length)."""

    status = 422
    code = "unprocessable_entity"


class ModelLoadError(RuntimeError):
    """The model artifact is missing, tampered with, or was built by incompatible versions."""
