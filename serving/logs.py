"""Structured logs: one JSON object per line, on stderr (CloudWatch reads the container's output).

Request logs carry ids, sizes, status and timings, never request text.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

import orjson

ACCESS = "serving.access"


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def timestamp(created: float) -> str:
    """``2026-12-01T20:11:36.123Z`` (the date and time formatted once a second)."""
    second = int(created)
    if _second[0] != second:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str) -> None:
    """JSON lines on stderr for every logger (gunicorn's included), at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("gunicorn.error", "gunicorn.access", "werkzeug"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("gunicorn.access").setLevel(logging.WARNING)  # we log requests ourselves
    # Python warnings (numpy's RuntimeWarning included) become JSON log lines, not stderr text.
    logging.captureWarnings(True)


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own messages as JSON lines too."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }


def _json_handler(logger: logging.Logger, level: int) -> logging.StreamHandler | None:
    """The one handler a record of ``logger`` would reach, when it is our JSON stream handler
    with nothing else in the way (no filters, no other handlers): what :func:`configure`
    sets up. Then :func:`log_request` writes the same line without building a LogRecord."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    while parent is not None and not parent.handlers and not parent.filters \
            and parent.propagate and parent.parent is not None:
        parent = parent.parent
    if parent is None or parent.filters or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if (type(handler) is not logging.StreamHandler or handler.filters
            or type(handler.formatter) is not JsonFormatter or level < handler.level):
        return None
    return handler


def log_request(logger: logging.Logger, fields: dict[str, Any]) -> None:
    """One request's JSON line (the same as ``logger.log`` through :class:`JsonFormatter`
    writes, at a fraction of the cost: this runs once per request)."""
    level = logging.ERROR if fields.get("status", 200) >= 500 else logging.INFO
    if not logger.isEnabledFor(level):
        return
    handler = _json_handler(logger, level)
    if handler is None:
        logger.log(level, "", extra={"fields": fields})
        return
    entry = {"time": timestamp(time.time()), "level": logging.getLevelName(level),
             "logger": logger.name, **fields}
    line = orjson.dumps(entry, default=str).decode() + handler.terminator
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # as logging does: a broken stream never fails the request
            handler.handleError(logging.makeLogRecord({"msg": "request log", "fields": fields}))
