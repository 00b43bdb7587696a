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
# Arrays, objects and strings one document may hold.  Each costs a worker 50-72 bytes once
# parsed, from 3-5 bytes of text (``[],``, ``{},``, ``"ab",``): 6 MB of them would be 75-150 MB
# of Python objects.  Our formats use at most 11 per record (a sparse NTM instance: 6 objects
# and arrays, 5 keys), so 500,000 is far above any request of 10,000 records; bigger (batch)
# bodies may hold one per 12 bytes.
MAX_CONTAINERS = 500_000
CONTAINER_BYTES = 12
WINDOW = 1 << 18  # bytes per step of count_containers


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
    """JSONError (``too_large``) if ``data`` holds more arrays, objects and strings than allowed.

    Counting ``[``, ``{`` and ``"`` bytes is one vectorised pass each (numpy: ~6x faster than
    ``bytes.count``, ~0.5 ms for the three in 1.7 MB); only when that count is over the limit
    are the ones inside strings told apart (:func:`count_containers`)."""
    if len(data) <= MAX_CONTAINERS:  # each container takes a character: nothing to count
        return
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    limit = container_limit(len(raw))
    a = np.frombuffer(raw, dtype=np.uint8)
    if (np.count_nonzero(a == 91) + np.count_nonzero(a == 123)
            + np.count_nonzero(a == 34) // 2 <= limit):
        return
    found = count_containers(raw, stop_after=limit)
    if found > limit:
        raise JSONError(f"the JSON in {where} holds more than {limit} arrays, objects and "
                        "strings (the limit); send fewer records per request", too_large=True)


def count_containers(raw: bytes, stop_after: int | None = None) -> int:
    """Arrays, objects and strings in a JSON text: ``[`` and ``{`` outside strings plus half the
    unescaped quotes (counting may stop past ``stop_after``).

    A quote is escaped when an odd run of backslashes ends just before it; a bracket is inside
    a string when an odd number of unescaped quotes precede it.  Vectorised over windows of
    :data:`WINDOW` bytes (the string state and a trailing backslash run carry over), so the
    scan needs a few MB whatever the body.
    """
    whole = np.frombuffer(raw, dtype=np.uint8)
    # carry: the backslashes that end the previous window
    count, quotes_seen, in_string, carry = 0, 0, False, 0
    for start in range(0, whole.size, WINDOW):
        a = whole[start : start + WINDOW]
        quotes = np.flatnonzero(a == 34)
        run = np.zeros(quotes.size, dtype=np.int64)  # backslashes just before each quote
        slashes = np.flatnonzero(a == 92)
        if quotes.size and slashes.size:
            breaks = np.flatnonzero(np.diff(slashes) != 1)
            run_ends = np.append(slashes[breaks], slashes[-1])
            run_starts = np.insert(slashes[breaks + 1], 0, slashes[0])
            at = np.searchsorted(run_ends, quotes - 1)
            hit = np.zeros(quotes.size, dtype=bool)
            ok = at < run_ends.size
            hit[ok] = run_ends[at[ok]] == quotes[ok] - 1
            run[hit] = run_ends[at[hit]] - run_starts[at[hit]] + 1
            run[hit & (run == quotes)] += carry  # the run began in the previous window
        if quotes.size and quotes[0] == 0:
            run[0] = carry
        unescaped = quotes[run % 2 == 0]
        brackets = np.flatnonzero((a == 91) | (a == 123))
        inside = (np.searchsorted(unescaped, brackets) % 2 == 1) ^ in_string
        count += int(brackets.size - np.count_nonzero(inside))
        quotes_seen += unescaped.size
        in_string ^= bool(unescaped.size % 2)
        if a.size and a[-1] == 92:
            others = np.flatnonzero(a != 92)
            carry = a.size - 1 - int(others[-1]) if others.size else carry + a.size
        else:
            carry = 0
        if stop_after is not None and count + quotes_seen // 2 > stop_after:
            break
    return count + quotes_seen // 2


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
