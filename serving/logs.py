"""Structured logs: one JSON object per line, on stderr (CloudWatch reads the container's output).

Request logs carry ids, sizes, status and timings, never request text.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

ACCESS = "serving.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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


def log_request(logger: logging.Logger, fields: dict[str, Any]) -> None:
    level = logging.ERROR if fields.get("status", 200) >= 500 else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(level, "", extra={"fields": fields})
