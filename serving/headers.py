"""Usenet header blocks: which lines are headers, their values, the Subject.

:func:`split_headers` runs once per document on the serving path, so the usual block (lines
separated by ``\\n`` only) is read with one regular expression over the whole block instead of a
Python loop per line; any other block (``\\r``, form feeds, Unicode line separators: every
boundary ``str.splitlines`` knows) takes the line loop. Both give the same answer (tests compare
them on generated blocks and on the whole corpus).
"""

from __future__ import annotations

import re

KNOWN_HEADERS = frozenset({
    "from", "subject", "newsgroups", "path", "date", "message-id", "organization", "lines",
    "references", "sender", "reply-to", "nntp-posting-host", "xref", "distribution",
    "keywords", "summary", "article-i.d.", "followup-to", "to", "cc", "x-newsreader",
})
_SUBJECT = re.compile(r"^Subject:[ \t]*(.*)$", re.MULTILINE | re.IGNORECASE)
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:")
# A header line and its continuation lines (starting with a space or a tab), in a block whose
# only line boundary is "\n".
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):([^\n]*(?:\n[ \t][^\n]*)*)", re.MULTILINE)
# The line boundaries of str.splitlines other than "\n".
_OTHER_BOUNDARY = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Longest header block read as headers (real ones are a few KB); a longer one is body text, so
# a folded "header" of millions of lines never becomes millions of strings.
MAX_HEADER_CHARS = 1 << 20


def split_headers(text: str) -> tuple[list[tuple[str, str]], str]:
    """Split a Usenet message into ``(name, value)`` headers and the body.

    A header block is recognised only when the first line looks like ``Name: value``; it ends
    at the first blank line and is at most ``MAX_HEADER_CHARS`` long. Continuation lines
    (starting with white space) extend the value.
    """
    if not _HEADER_LINE.match(text):
        return [], text
    head, sep, body = text.partition("\n\n")
    if not sep:
        head, body = text, ""
    if len(head) > MAX_HEADER_CHARS:  # no real header block is this long: it is text
        return [], text
    if head.endswith("\n") or _OTHER_BOUNDARY.search(head):
        headers = _header_lines(head)
    else:
        names, values = zip(*_FIELD.findall(head), strict=True)  # the first line is one
        # Every line belongs to a field (a header line or its continuations), or it is no block.
        if "\n".join(values).count("\n") != head.count("\n"):
            return [], text
        headers = list(zip("\n".join(names).lower().split("\n"),
                           [" ".join(part.strip() for part in value.split("\n"))
                            if "\n" in value else value.strip() for value in values],
                           strict=True))
    if headers is None or KNOWN_HEADERS.isdisjoint(name for name, _ in headers):
        return [], text  # "Question: why ..." is text, not a header
    return headers, body


def _header_lines(head: str) -> list[tuple[str, str]] | None:
    """The headers of a block line by line (any line boundary), or None if a line is neither a
    header nor a continuation."""
    # Each header's value as a list of parts, joined once at the end: appending to a string per
    # continuation line would copy it every time (quadratic in a long folded header).
    parts: list[tuple[str, list[str]]] = []
    for line in head.splitlines():
        if line[:1] in (" ", "\t") and parts:
            parts[-1][1].append(line.strip())
        elif _HEADER_LINE.match(line):
            name, _, value = line.partition(":")
            parts.append((name.strip().lower(), [value.strip()]))
        else:  # not a header block after all
            return None
    return [(name, " ".join(values)) for name, values in parts]


def subject_of(text: str) -> str:
    """The Subject header of a message, or its first non-empty line."""
    headers, body = split_headers(text)
    for name, value in headers:
        if name == "subject":
            return value
    found = _SUBJECT.search(text[:4000])
    if found:
        return found.group(1).strip()
    for line in body.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""
