"""Command-line parsers whose ``--help`` reads as plain text, with each option's default.

Module docstrings double as help texts; their reStructuredText literals and roles are shown
without markup. Sub-commands inherit the formatter (argparse builds them with ``type(self)``).
"""

from __future__ import annotations

import argparse
import copy
import re
from typing import Any

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`x` -> x
_LITERAL = re.compile(r"``([^`]+)``")  # ``x`` -> x
_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)  # "Command line::" -> "Command line:"


def plain(text: str) -> str:
    """``text`` without reStructuredText literal, role and literal-block markup."""
    return _BLOCK.sub(":", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


class PlainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (minus markup); options show a default when they have one."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain(text), width, indent)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):  # argparse shows no line for it otherwise
            action = copy.copy(action)
            action.help = "default: %(default)s"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        if _has_default(action) and "%(default)" not in text and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


def _has_default(action: argparse.Action) -> bool:
    default = action.default
    return bool(action.option_strings) and default is not None \
        and default is not argparse.SUPPRESS and not isinstance(default, bool) and default != []


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`PlainHelpFormatter` unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        super().__init__(*args, **kwargs)
