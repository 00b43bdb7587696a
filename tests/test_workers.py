"""serving.workers: the gunicorn worker and logger the server runs with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from serving.config import Settings
from serving.serve import gunicorn_options
from serving.workers import JsonErrorWorker, RequestLogger


class Untouchable:
    """A request, response or environ that fails on any use."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was read")

    def __iter__(self) -> Any:
        raise AssertionError("iterated")


def configured(logger_class: type) -> Any:
    cfg = Config()
    for name, value in gunicorn_options(Settings.from_env({})).items():
        cfg.set(name, value)
    return logger_class(cfg)


def test_server_runs_our_worker_and_logger() -> None:
    options = gunicorn_options(Settings.from_env({}))
    assert options["worker_class"] is JsonErrorWorker
    assert options["logger_class"] is RequestLogger
    assert options["logconfig_dict"]  # which is what switches gunicorn's access log on


def test_access_builds_nothing() -> None:
    untouchable = Untouchable()
    # gunicorn's own logger, with our configuration, reads every header and environ entry...
    with pytest.raises(AssertionError):
        configured(glogging.Logger).access(untouchable, untouchable, untouchable,
                                           timedelta(milliseconds=1))
    # ...ours does not (requests are logged once, by the app).
    assert configured(RequestLogger).access(untouchable, untouchable, untouchable,
                                            timedelta(milliseconds=1)) is None


def test_a_quick_shutdown_is_not_a_timeout() -> None:
    """gunicorn's worker exits with 0 on SIGINT/SIGQUIT (quick shutdown) and with 1 on the
    arbiter's SIGABRT (the worker timeout): only the second is a 504."""
    from serving.workers import classify

    assert classify(SystemExit(1), 60)[:2] == (504, "timeout")
    assert classify(SystemExit(0), 60)[:2] == (503, "service_unavailable")
