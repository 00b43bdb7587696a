"""bench/startup.py: a cold start split into phases by the server's log lines."""

from __future__ import annotations

import json

import pytest

from bench import startup


def line(stamp: str, message: str, logger: str = "gunicorn.error") -> str:
    return json.dumps({"time": stamp, "level": "INFO", "logger": logger, "message": message})


LOG = "\n".join([
    "not json: skipped",
    line("2026-12-02T05:29:15.893Z", "model loaded from /opt/ml/model and warmed up for stage "
         "classify in 0.17 s (word scanner: C; heap: huge pages asked "
         "(glibc.malloc.hugetlb=1; kernel THP: madvise))", "serving.serve"),
    line("2026-12-02T05:29:15.900Z", "Starting gunicorn 27.0.1"),
    line("2026-12-02T05:29:15.901Z", "Listening at: unix:/tmp/sm-serve-x/model-server.sock (1)"),
    line("2026-12-02T05:29:15.933Z", "nginx listening on 127.0.0.1:8080, in front of /tmp/x"),
    line("2026-12-02T05:29:15.975Z", "Booting worker with pid: 14"),
    line("2026-12-02T05:29:15.940Z", "Booting worker with pid: 13"),
    json.dumps({"message": "no time: skipped"}),
])


def test_epoch_reads_docker_and_log_stamps() -> None:
    assert startup.epoch("1970-01-01T00:00:01.5Z") == 1.5
    assert startup.epoch("1970-01-01T00:00:02.123456789Z") == pytest.approx(2.123456789)
    assert startup.epoch("1970-01-01T00:01:00Z") == 60.0


def test_phases_from_the_log_lines() -> None:
    lines = startup.log_lines(LOG)
    assert len(lines) == 6 and lines == sorted(lines)
    started = startup.epoch("2026-12-02T05:29:15.000Z")
    got = startup.phases(started - 0.2, started, lines, first_ping_s=1.2)
    expected = {"docker_until_started_s": 0.2, "python_and_imports_s": 0.723,
                "model_load_and_warm_up_s": 0.17, "socket_and_front_end_s": 0.04,
                "first_worker_booted_s": 0.007, "until_first_ping_s": 0.06, "total_s": 1.2}
    assert got == pytest.approx(expected, abs=1e-6)
    assert sum(v for k, v in got.items() if k != "total_s") == pytest.approx(1.2)


def test_without_the_front_end_gunicorn_listens() -> None:
    lines = [t for t in startup.log_lines(LOG) if not t[1].startswith("nginx")]
    started = startup.epoch("2026-12-02T05:29:15.000Z")
    got = startup.phases(started, started, lines, first_ping_s=1.0)
    assert got["socket_and_front_end_s"] == pytest.approx(0.008, abs=1e-6)
    assert got["first_worker_booted_s"] == pytest.approx(0.039, abs=1e-6)


def test_a_log_without_the_model_line_is_an_error() -> None:
    with pytest.raises(StopIteration):
        startup.phases(0.0, 0.0, [(1.0, "Booting worker with pid: 3")], 1.0)
    with pytest.raises(ValueError, match="unexpected log line"):
        startup.phases(0.0, 0.0, [(1.0, "model loaded but no duration")], 1.0)


def test_summary_medians_and_runs() -> None:
    runs = [{"total_s": 1.0, "a": 1.0, "container_cpu_s": 0.5}, {"total_s": 3.0, "a": 2.0},
            {"total_s": 2.0, "a": 9.0, "container_cpu_s": 0.7}]
    assert startup.summary(runs) == {"total_s": 2.0, "a": 2.0, "total_runs_s": [1.0, 3.0, 2.0]}
