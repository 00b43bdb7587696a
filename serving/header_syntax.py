"""The syntax of media types in HTTP header values (RFC 7231 §3.1.1.1, §5.3.2): tokens, quoted
strings, ``type/subtype *(OWS ";" OWS name=value)``.  ``serving.mediatypes`` builds on it.
"""

from __future__ import annotations

import string

TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)


class Scanner:
    """A cursor over one header value; every ``expect_*`` raises ValueError on bad syntax."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t") and not self.at_end():
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] in TCHAR:
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"expected a token at position {start}")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while not self.at_end():
            c = self.text[self.pos]
            self.pos += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                if self.at_end():
                    break
                c = self.text[self.pos]
                self.pos += 1
            if c in "\r\n\x00":
                raise ValueError("control character in quoted string")
            out.append(c)
        raise ValueError("unterminated quoted string")

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} at position {self.pos}")
        self.pos += 1

    def skip_element(self) -> None:
        """Skip to the next top-level comma (for recovering from a bad Accept element)."""
        while not self.at_end() and self.peek() != ",":
            if self.peek() == '"':
                try:
                    self.quoted()
                except ValueError:
                    self.pos = len(self.text)
            else:
                self.pos += 1


def media_range(sc: Scanner) -> tuple[str, list[tuple[str, str]]]:
    """Parse ``type/subtype *(OWS ";" OWS name=value)`` and stop before a comma or the end."""
    sc.skip_ws()
    main = sc.token()
    sc.expect("/")
    sub = sc.token()
    params: list[tuple[str, str]] = []
    while True:
        sc.skip_ws()
        if sc.peek() != ";":
            break
        sc.pos += 1
        sc.skip_ws()
        if sc.at_end() or sc.peek() in ",;":
            continue  # tolerate empty parameters ("text/csv;", "a/b;;c=d")
        name = sc.token().lower()
        sc.skip_ws()
        sc.expect("=")
        sc.skip_ws()
        value = sc.quoted() if sc.peek() == '"' else sc.token()
        params.append((name, value))
    return f"{main}/{sub}", params


def first_wins(params: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in params:
        out.setdefault(k, v)
    return out
