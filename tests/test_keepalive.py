"""The workers keep nginx's connections open (serving.keepalive): reuse through nginx, a kept
connection never holds its worker, an unread body is not taken for the next request, the
open-connection cap, nginx closing idle ones, and a prompt SIGTERM. Real servers on 127.0.0.1
and their private unix socket only; every load is bounded in count and time."""

from __future__ import annotations

import re
import resource
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from serving import keepalive, nginx_conf
from serving.config import Settings
from tests.test_front_end import (
    DOC,
    TIMEOUT_ENV,
    LoggedServer,
    parse,
    post_until_timed_out,
    start_logged,
)

pytestmark = pytest.mark.slow
SERVED = re.compile(r"^worker \d+ served (\d+) requests on (\d+) connections from nginx$")


def unix_socket_of(server: LoggedServer) -> str:
    for line in server.log_lines():
        found = re.match(r"^Listening at: unix:(\S+) ", line.get("message", ""))
        if found:
            return found.group(1)
    raise AssertionError("no unix socket in the log")


def stop_and_count(server: LoggedServer) -> tuple[int, int]:
    """SIGTERM; (requests, connections) the workers report on their way out."""
    assert server.stop() == 0
    counts = [SERVED.match(line.get("message", "")) for line in server.log_lines()]
    found = [(int(m.group(1)), int(m.group(2))) for m in counts if m]
    assert found, "no worker reported its connections"
    return sum(r for r, _ in found), sum(c for _, c in found)


class Raw:
    """An HTTP/1.1 client on the workers' unix socket, as nginx talks to them."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes = b"",
                content_type: str = "text/plain") -> tuple[int, dict[str, str], bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}"
                f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head_end = self.buffer.index(b"\r\n\r\n") + 4
        status, headers, _ = parse(self.buffer[:head_end])
        length = int(headers["content-length"])
        while len(self.buffer) < head_end + length:
            self.buffer += self._recv()
        end = head_end + length
        answer, self.buffer = self.buffer[head_end:end], self.buffer[end:]
        return status, headers, answer

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the worker closed the connection")
        return chunk

    def closed_by_peer(self, wait: float = 5.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def test_nginx_reuses_its_connections_to_the_workers(tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "reuse.log")
    sent = 0
    with requests.Session() as session:
        for i in range(150):
            response = session.post(f"{server.url}/invocations", data=DOC,
                                    headers={"Content-Type": "text/plain"}, timeout=10)
            assert response.status_code == 200, response.text
            sent += 1
            if i % 50 == 0:  # clients without keep-alive reuse nginx's connections too
                assert requests.get(f"{server.url}/ping", timeout=10,
                                    headers={"Connection": "close"}).status_code == 200
                sent += 1
    served, connections = stop_and_count(server)
    assert served >= sent  # (the readiness /pings of start_logged too)
    assert connections <= 10, (served, connections)


def test_a_kept_connection_does_not_hold_its_worker(tiny_model_dir: Path,
                                                    tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "held.log", workers=1)
    try:
        raw = Raw(unix_socket_of(server))
        status, headers, _ = raw.request("POST", "/invocations", DOC)
        assert status == 200 and headers["connection"] == "keep-alive"
        # The only worker keeps `raw` open and idle: it still answers everyone else at once.
        started = time.monotonic()
        for _ in range(5):
            assert server.post(DOC).status_code == 200
        assert time.monotonic() - started < 5
        status, _, body = raw.request("GET", "/ping")  # and `raw` is still served
        assert status == 200 and b'"ok"' in body
        raw.close()
    finally:
        server.stop()


@pytest.mark.parametrize("method, path, content_type", [
    ("POST", "/nowhere", "text/plain"),  # 404 from Flask, which never reads the body
    ("PUT", "/invocations", "text/plain"),  # 405
    ("POST", "/invocations", "image/png"),  # 415 after the body was read
])
def test_an_unread_body_is_not_taken_for_the_next_request(tiny_model_dir: Path, tmp_path: Path,
                                                          method: str, path: str,
                                                          content_type: str) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "unread.log", workers=1)
    try:
        raw = Raw(unix_socket_of(server))
        # A body that looks like a request: were it read as the next one, /ping would not be.
        body = b"GET /execution-parameters HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 200_000
        status, headers, _ = raw.request(method, path, body, content_type)
        assert 400 <= status < 500
        if headers.get("connection") == "keep-alive":
            status, _, answer = raw.request("GET", "/ping")
            assert status == 200 and b'"ok"' in answer, answer
        raw.close()
        assert server.post(DOC).status_code == 200
    finally:
        server.stop()


def test_over_the_cap_a_connection_is_closed_after_its_answer(tiny_model_dir: Path,
                                                               tmp_path: Path) -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    # 64 open files: a worker keeps at most 16 connections (keepalive.max_connections).
    server = start_logged(tiny_model_dir, tmp_path / "cap.log", workers=1,
                          preexec_fn=low_limit)
    try:
        path = unix_socket_of(server)
        clients = [Raw(path) for _ in range(24)]
        kept = 0
        for client in clients:
            status, headers, _ = client.request("GET", "/ping")
            assert status == 200
            kept += headers["connection"] == "keep-alive"
        # nginx holds a few connections of its own (the readiness /pings)
        assert 16 - 4 <= kept <= 16, kept
        for client in clients:
            client.close()
        assert server.post(DOC).status_code == 200
    finally:
        server.stop()


def test_nginx_closes_idle_connections_and_the_worker_follows(tiny_model_dir: Path,
                                                               tmp_path: Path) -> None:
    # graceful timeout 1 s: nginx closes its idle upstream connections after 1 s
    server = start_logged(tiny_model_dir, tmp_path / "idle.log",
                          env={"SERVING_GRACEFUL_TIMEOUT": "1"})
    raw = Raw(unix_socket_of(server))
    assert raw.request("GET", "/ping")[0] == 200
    for _ in range(3):
        assert server.post(DOC).status_code == 200
        time.sleep(1.3)
    assert server.post(DOC).status_code == 200
    assert not raw.closed_by_peer(wait=1.0)  # a worker never closes an idle connection
    raw.close()
    _served, connections = stop_and_count(server)
    assert connections >= 4  # a new one after each idle second
    assert not [line for line in server.log_lines() if line["level"] in ("ERROR", "NOT-JSON")]


def test_sigterm_with_kept_connections_is_prompt(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "term.log")
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(f"{server.url}/ping", timeout=10).status_code == 200
    results: list[int] = []

    def load() -> None:
        with requests.Session() as session:
            for _ in range(200):
                try:
                    results.append(session.post(f"{server.url}/invocations", data=DOC,
                                                headers={"Content-Type": "text/plain"},
                                                timeout=10).status_code)
                except requests.ConnectionError:
                    return  # nginx stopped accepting

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    elapsed = server.terminate_timed()
    for thread in threads:
        thread.join(30)
    assert server.process.returncode == 0
    assert elapsed < 5, elapsed  # nginx closed the idle connections; nobody waited 20 s
    assert results and set(results) == {200}, set(results)  # no 502 from a closed connection


def test_max_connections_follows_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    for soft, expected in [(64, 16), (1024, 256), (4, 1), (resource.RLIM_INFINITY, 256)]:
        monkeypatch.setattr(resource, "getrlimit", lambda _kind, s=soft: (s, s))
        assert keepalive.max_connections() == expected


def test_nginx_keeps_upstream_connections() -> None:
    text = nginx_conf.render(Settings(graceful_timeout=3), Path("/tmp/x"), Path("/tmp/x/s.sock"))
    assert "server unix:/tmp/x/s.sock;" in text
    assert f"keepalive {nginx_conf.UPSTREAM_IDLE_CONNECTIONS};" in text
    assert "keepalive_timeout 3s;" in text  # within the workers' graceful drain
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text


def test_without_front_end_gunicorn_closes_every_connection(tiny_model_dir: Path,
                                                           tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "direct.log",
                          env={"SERVING_FRONT_END": "none"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status, headers, _ = parse(answer)
        assert status == 200 and headers["connection"] == "close"
    finally:
        server.stop()


def test_a_timed_out_worker_exits_at_once_with_kept_connections(tiny_model_dir: Path,
                                                                 tmp_path: Path) -> None:
    """gunicorn's worker timeout aborts a worker: it answers 504 and goes, without waiting for
    nginx to close its kept connections as on SIGTERM; the arbiter boots another at once."""
    server = start_logged(tiny_model_dir, tmp_path / "abort.log", workers=1, env=TIMEOUT_ENV)
    try:
        kept = Raw(unix_socket_of(server))  # a connection the worker keeps, idle
        assert kept.request("GET", "/ping")[0] == 200
        response = post_until_timed_out(server)
        assert response.status_code in (502, 504), response.text[:200]
        aborted = time.monotonic()
        assert kept.closed_by_peer(wait=5.0)  # the aborted worker went, with its connections
        assert time.monotonic() - aborted < 4
        kept.close()
        assert server.post(DOC).status_code == 200  # its successor answers
    finally:
        server.stop()
