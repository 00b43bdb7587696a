"""Content-Type and Accept parsing and content negotiation (RFC 7231 §3.1.1.1, §5.3.2).

Media types are lowercased and canonicalised on parsing (``application/x-jsonlines`` and
``application/jsonl`` become ``application/jsonlines``), so callers compare ``media.type`` with the
constants below.  Parameter names are lowercased; parameter values keep their case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from serving.errors import NotAcceptable, UnsupportedMediaType
from serving.header_syntax import TCHAR, Scanner, first_wins, media_range

TEXT_PLAIN = "text/plain"
TEXT_CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"

ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "application/x-jsonlines": JSONLINES,
        "application/jsonl": JSONLINES,
    }
)
ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class MediaType:
    """A parsed media type: canonical ``type/subtype``, its parameters, and its Accept weight."""

    type: str
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    q: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", canonical(self.type))
        params = {k.lower(): v for k, v in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(params))

    @property
    def essence(self) -> str:
        """``type/subtype`` without parameters (already canonical)."""
        return self.type

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name.lower(), default)

    def flag(self, name: str) -> bool:
        """True when parameter ``name`` is ``true``/``1``/``yes`` (case-insensitive)."""
        return (self.param(name) or "").strip().lower() in {"true", "1", "yes"}

    def __str__(self) -> str:
        return self.type + "".join(f"; {k}={_quote(v)}" for k, v in self.params.items())


def canonical(essence: str) -> str:
    """Lowercase ``type/subtype`` and map known aliases to their canonical name."""
    essence = essence.strip().lower()
    return ALIASES.get(essence, essence)


# Answers are written in UTF-8, and CSV answers have neither a header row nor a label column.
# These are the only parameters an answer's Content-Type carries, and only when asked for (a
# ``text/csv; label_size=0`` for k-NN); every other Accept parameter steers an encoder
# (``sparse``, ``verbose``) or is ignored, and none is copied into the answer: a client's text in a
# response header would label the body wrongly (``charset=utf-16``, ``header=present``) and,
# long enough, overflow the front end's buffer for the answer's head.
TEXT_TYPES = frozenset({TEXT_PLAIN, TEXT_CSV, JSON, JSONLINES})


def unmet(offer: str, params: Mapping[str, str]) -> str | None:
    """Why an answer of type ``offer`` cannot be what media parameters ``params`` ask for (an
    Accept range's, or the default's), or None when it can."""
    charset = params.get("charset")
    if offer in TEXT_TYPES and charset is not None \
            and charset.strip().lower() not in {"utf-8", "utf8"}:
        return f"charset={charset} (answers are UTF-8)"
    if offer == TEXT_CSV:
        header = params.get("header")
        if header is not None and header.strip().lower() != "absent":
            return f"header={header} (CSV answers have no header row)"
        label_size = params.get("label_size")
        if label_size is not None and label_size.strip() != "0":
            return f"label_size={label_size} (CSV answers have no label column)"
    return None


def content_type_for(media: MediaType) -> str:
    """The Content-Type header to send: the canonical type, with ``charset=utf-8`` (text types),
    ``header=absent`` and ``label_size=0`` (CSV) when the chosen media type names them."""
    kept: dict[str, str] = {}
    if media.type in TEXT_TYPES and "charset" in media.params:
        kept["charset"] = "utf-8"
    if media.type == TEXT_CSV:
        kept.update((name, value) for name, value in (("header", "absent"), ("label_size", "0"))
                    if name in media.params)
    return str(MediaType(media.type, kept))


def _quote(value: str) -> str:
    if value and all(c in TCHAR for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_media_type(value: str) -> MediaType:
    """Parse one concrete media type (no wildcards, nothing after it); ValueError if invalid."""
    sc = Scanner(value)
    essence, params = media_range(sc)
    sc.skip_ws()
    if not sc.at_end():
        raise ValueError(f"unexpected {sc.peek()!r} at position {sc.pos}")
    if "*" in essence:
        raise ValueError("a wildcard is not a concrete media type")
    return MediaType(canonical(essence), first_wins(params))


def parse_content_type(value: str | None) -> MediaType:
    """Parse a request's Content-Type; UnsupportedMediaType if missing, invalid or not UTF-8."""
    if value is None or not value.strip():
        raise UnsupportedMediaType("missing Content-Type header")
    try:
        media = parse_media_type(value)
    except ValueError as exc:
        raise UnsupportedMediaType(f"cannot parse Content-Type {value[:100]!r}: {exc}") from None
    charset = media.param("charset")
    if charset is not None and charset.strip().lower() not in ACCEPTED_CHARSETS:
        raise UnsupportedMediaType(
            f"charset {charset[:40]!r} is not supported; send UTF-8 (charset=utf-8)"
        )
    return media


def _qvalue(raw: str) -> float:
    q = float(raw)  # ValueError on garbage
    if not 0.0 <= q <= 1.0 or len(raw) > 5:
        raise ValueError(f"q={raw!r} is outside 0..1")
    return q


def parse_accept(value: str | None) -> list[MediaType]:
    """Parse an Accept header into its media ranges (with q); malformed elements are skipped."""
    if not value:
        return []
    sc = Scanner(value)
    ranges: list[MediaType] = []
    while True:
        sc.skip_ws()
        if sc.at_end():
            break
        if sc.peek() == ",":
            sc.pos += 1
            continue
        start = sc.pos
        try:
            essence, raw = media_range(sc)
            sc.skip_ws()
            if not sc.at_end() and sc.peek() != ",":
                raise ValueError("junk after media range")
            main, sub = essence.split("/", 1)
            if main == "*" and sub != "*":
                raise ValueError("*/subtype is not a media range")
            params: list[tuple[str, str]] = []
            q = 1.0
            for k, v in raw:
                if k == "q":
                    q = _qvalue(v)
                    break  # what follows q are accept-extensions: ignored
                params.append((k, v))
            ranges.append(MediaType(canonical(essence), first_wins(params), q))
        except ValueError:
            sc.pos = start
            sc.skip_element()
    return ranges


def _specificity(accept_type: str, offered: str) -> int:
    """2 for an exact match, 1 for ``type/*``, 0 for ``*/*``, -1 for no match."""
    if accept_type == offered:
        return 2
    if accept_type == "*/*":
        return 0
    main, sub = accept_type.split("/", 1)
    if sub == "*" and offered.split("/", 1)[0] == main:
        return 1
    return -1


def negotiate(accept: str | None, offered: Sequence[str], default: str) -> MediaType:
    """Choose the response media type.

    A missing, empty or ``*/*`` Accept gives ``default`` (which may carry parameters, e.g.
    ``application/json; verbose=true``).  Otherwise the offered type with the highest q wins; for
    each offered type the most specific matching range decides its q (exact > ``type/*`` > ``*/*``),
    ``q=0`` excludes it, and ties go to exact matches, then to the range listed first, then to
    ``default``, then to the order of ``offered``.  A range whose parameters an answer cannot
    meet (:func:`unmet`) does not match.  The parameters of the chosen Accept entry are kept for
    the encoders (a wildcard match that lands on ``default`` keeps ``default``'s parameters);
    :func:`content_type_for` writes only those that describe the answer.

    Raises NotAcceptable when nothing matches, when the header cannot be parsed at all, or when the
    answer would be ``default`` but ``default`` is not one of ``offered``.
    """
    offers = [canonical(o) for o in offered]
    try:
        default_media = parse_media_type(default)
    except ValueError as exc:
        raise NotAcceptable(f"the default response type {default!r} is invalid: {exc}") from None
    listed = ", ".join(offers)

    def use_default(q: float = 1.0) -> MediaType:
        if default_media.type not in offers:
            raise NotAcceptable(
                f"the default response type {default_media.type} is not one this stage writes "
                f"({listed}); fix SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT or send Accept"
            )
        why = unmet(default_media.type, default_media.params)
        if why:
            raise NotAcceptable(f"the default response type {default} asks for {why}; fix "
                                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT or send Accept")
        return MediaType(default_media.type, default_media.params, q)

    if accept is None or not accept.strip():
        return use_default()
    ranges = parse_accept(accept)
    if not ranges:
        raise NotAcceptable(f"cannot parse Accept {accept[:100]!r}; this stage writes {listed}")
    if all(r.type == "*/*" for r in ranges) and any(r.q > 0 for r in ranges):
        return use_default()

    best: tuple[tuple[float, int, int, int, int], MediaType] | None = None
    refused: list[str] = []  # ranges of a written type whose parameters cannot be met
    for o_idx, offer in enumerate(offers):
        match: tuple[int, int, MediaType] | None = None  # (specificity, -accept index, range)
        for a_idx, rng in enumerate(ranges):
            spec = _specificity(rng.type, offer)
            if spec < 0:
                continue
            why = unmet(offer, rng.params)
            if why:  # parameters refine a range (RFC 9110 12.5.1): this one does not match
                if rng.q > 0:
                    refused.append(f"{offer}; {why}")
                continue
            if match is None or spec > match[0] or (spec == match[0] and rng.q > match[2].q):
                match = (spec, -a_idx, rng)
        if match is None or match[2].q <= 0:
            continue
        spec, neg_idx, rng = match
        is_default = int(offer == default_media.type)
        key = (rng.q, int(spec == 2), neg_idx, is_default, -o_idx)
        if spec == 2:
            chosen = MediaType(offer, rng.params, rng.q)
        elif is_default:
            chosen = MediaType(offer, default_media.params, rng.q)
        else:
            chosen = MediaType(offer, _EMPTY, rng.q)
        if best is None or key > best[0]:
            best = (key, chosen)
    if best is None and refused:
        raise NotAcceptable(f"Accept asks for {refused[0]}; this stage writes {listed}")
    if best is None:
        raise NotAcceptable(f"none of the types in Accept is one this stage writes ({listed})")
    return best[1]
