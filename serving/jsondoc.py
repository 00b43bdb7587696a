"""The one JSON parser for everything the product reads, with one nesting guard.

Request bodies (JSON, JSON Lines, every stage and codec), training data (JSON Lines),
``hyperparameters.json``, the model manifest and the other model files, the catalog, and the
stand-ins' bodies and configs all go through :func:`loads`.

The guard is the parser's own: orjson (3.9 and later) stops at nesting depth 1024 with a normal
``JSONDecodeError`` instead of recursing on the C stack (orjson 3.8.3 overflowed it and killed the
process with SIGSEGV on ``"[" * 140_000``).  Importing this module checks that the installed orjson
really enforces the limit, so an old wheel fails at start-up, not under attack.  The stdlib
``json`` module is not used for reading: it recurses on the Python stack and raises
``RecursionError``, which is not a ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 1024  # orjson's parser limit: deeper arrays/objects raise JSONDecodeError


class JSONError(ValueError):
    """A document that is not JSON, or is nested deeper than :data:`MAX_DEPTH`.

    ``message`` names ``where`` and the position, never the text.
    """

    def __init__(self, message: str, too_deep: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_deep = too_deep


def loads(data: bytes | bytearray | memoryview | str, where: str = "the body") -> Any:
    """Parse ``data``; :class:`JSONError` saying where, and whether it was nested too deeply."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if _is_depth_error(exc):
            raise JSONError(
                f"the JSON in {where} is nested more than {MAX_DEPTH} levels deep "
                f"(at line {exc.lineno} column {exc.colno})", too_deep=True,
            ) from None
        raise JSONError(
            f"malformed JSON in {where}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _is_depth_error(exc: orjson.JSONDecodeError) -> bool:
    msg = exc.msg.lower()
    return "depth" in msg or "recursion" in msg


def _check_parser() -> None:
    """Refuse an orjson without the depth limit (it would crash on deep input)."""
    n = MAX_DEPTH + 1
    try:
        orjson.loads("[" * n + "]" * n)
    except orjson.JSONDecodeError as exc:
        if _is_depth_error(exc):
            return
    except Exception:
        pass
    raise ImportError(
        f"orjson {orjson.__version__} does not limit JSON nesting to {MAX_DEPTH} levels; "
        "install the version pinned in pyproject.toml"
    )


_check_parser()
