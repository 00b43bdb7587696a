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

import numpy as np
import orjson

MAX_DEPTH = 1024  # orjson's parser limit: deeper arrays/objects raise JSONDecodeError
# Arrays and objects one document may hold.  Each costs a worker 56-72 bytes once parsed, from
# 2-3 bytes of text (``[],`` or ``{},``): 6 MB of them would be ~150 MB of Python objects.  Our
# formats use at most 6 per record (a sparse NTM instance), so 500,000 is far above any request
# of 10,000 records; bigger (batch) bodies may hold one per 12 bytes.
MAX_CONTAINERS = 500_000
CONTAINER_BYTES = 12


class JSONError(ValueError):
    """A document that is not JSON, or is nested deeper than :data:`MAX_DEPTH`.

    ``message`` names ``where`` and the position, never the text.
    """

    def __init__(self, message: str, too_deep: bool = False, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_deep = too_deep
        self.too_large = too_large


def loads(data: bytes | bytearray | memoryview | str, where: str = "the body") -> Any:
    """Parse ``data``; :class:`JSONError` saying where, and whether it was nested too deeply or
    holds more arrays and objects than :func:`container_limit` allows."""
    check_containers(data, where)
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


def container_limit(size: int) -> int:
    return max(MAX_CONTAINERS, size // CONTAINER_BYTES)


def check_containers(data: bytes | bytearray | memoryview | str, where: str) -> None:
    """JSONError (``too_large``) if ``data`` holds more arrays and objects than allowed.

    Counting ``[`` and ``{`` bytes is one pass in C; only when that count is over the limit are
    the ones inside strings told apart (:func:`count_containers`)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    limit = container_limit(len(raw))
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    found = count_containers(raw)
    if found > limit:
        raise JSONError(f"the JSON in {where} holds {found} arrays and objects; the limit is "
                        f"{limit}: send fewer records per request", too_large=True)


def count_containers(raw: bytes) -> int:
    """Number of ``[`` and ``{`` outside JSON strings, vectorised over positions of interest.

    A quote is escaped when an odd run of backslashes ends just before it; a bracket is inside
    a string when an odd number of unescaped quotes precede it.
    """
    a = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(a == 34)
    slashes = np.flatnonzero(a == 92)
    if slashes.size and quotes.size:
        breaks = np.flatnonzero(np.diff(slashes) != 1)
        run_ends = np.append(slashes[breaks], slashes[-1])
        run_starts = np.insert(slashes[breaks + 1], 0, slashes[0])
        at = np.searchsorted(run_ends, quotes - 1)
        at_ok = at < run_ends.size
        ends_before = np.zeros(quotes.size, dtype=bool)
        ends_before[at_ok] = run_ends[at[at_ok]] == quotes[at_ok] - 1
        odd = np.zeros(quotes.size, dtype=bool)
        odd[ends_before] = (run_ends[at[ends_before]] - run_starts[at[ends_before]]) % 2 == 0
        quotes = quotes[~odd]
    brackets = np.flatnonzero((a == 91) | (a == 123))
    inside = np.searchsorted(quotes, brackets) % 2 == 1
    return int(brackets.size - np.count_nonzero(inside))


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
