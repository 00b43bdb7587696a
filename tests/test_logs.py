import io
import logging

import orjson
import pytest

from serving import logs


@pytest.fixture()
def stream() -> io.StringIO:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("INFO")
    buf = io.StringIO()
    root.handlers[0].stream = buf
    yield buf
    root.handlers[:], root.level = saved


def only_ours() -> None:
    """Drop the capture handler pytest adds to the root logger for the test's call phase."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if type(h) is logging.StreamHandler]


def test_request_line_equals_the_formatter_line(stream: io.StringIO, monkeypatch) -> None:
    access = logging.getLogger(logs.ACCESS)
    fields = {"request_id": "abc", "stage": "classify", "status": 200, "total_ms": 1.25}
    only_ours()
    assert logs._json_handler(access, logging.INFO) is not None  # the direct write is used
    logs.log_request(access, dict(fields))
    monkeypatch.setattr(logs, "_json_handler", lambda *args: None)  # through a LogRecord
    logs.log_request(access, dict(fields))
    logs.log_request(access, {**fields, "status": 503})
    fast, slow, error = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert list(fast) == list(slow) == ["time", "level", "logger", *fields]
    assert {**fast, "time": 0} == {**slow, "time": 0}
    assert fast["time"].endswith("Z") and len(fast["time"]) == len("2026-12-01T20:11:36.123Z")
    assert error["level"] == "ERROR"


def test_other_handlers_get_records(stream: io.StringIO) -> None:
    access = logging.getLogger(logs.ACCESS)
    only_ours()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    access.addHandler(handler)
    try:
        assert logs._json_handler(access, logging.INFO) is None
        logs.log_request(access, {"request_id": "abc", "status": 200})
    finally:
        access.removeHandler(handler)
    assert len(seen) == 1 and seen[0].fields["request_id"] == "abc"  # type: ignore[attr-defined]
    assert stream.getvalue().count("\n") == 1  # and the JSON line still went out


def test_below_the_level_nothing_is_written(stream: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    logs.log_request(logging.getLogger(logs.ACCESS), {"request_id": "abc", "status": 200})
    assert stream.getvalue() == ""
