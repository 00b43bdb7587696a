"""serving.keepalive.CoalescingSocket: an answer's head and body reach nginx in one write, in
order, whatever gunicorn's Response asks of the socket (no server, a socket pair)."""

from __future__ import annotations

import socket
from typing import Any

from gunicorn import http
from gunicorn.config import Config
from gunicorn.http import wsgi

from serving.keepalive import COALESCE_BYTES, CoalescingSocket


class Recorder:
    """A socket that records what is asked of it (and passes it on to a real one, if any)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock, self.calls = sock, []

    def sendall(self, data: bytes) -> None:
        self.calls.append(("sendall", bytes(data)))
        if self.sock is not None:
            self.sock.sendall(data)

    def fileno(self) -> int:
        self.calls.append(("fileno", None))
        return -1 if self.sock is None else self.sock.fileno()

    def getsockname(self) -> Any:
        self.calls.append(("getsockname", None))
        return "name"


def test_small_parts_are_held_and_sent_in_one_write() -> None:
    raw = Recorder()
    sock = CoalescingSocket(raw)
    sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    sock.sendall(b"body")
    assert raw.calls == []
    sock.flush()
    assert raw.calls == [("sendall", b"HTTP/1.1 200 OK\r\n\r\nbody")]
    sock.flush()  # nothing held: nothing sent
    assert len(raw.calls) == 1


def test_a_large_part_goes_after_what_is_held_without_a_copy() -> None:
    raw = Recorder()
    sock = CoalescingSocket(raw)
    big = b"x" * COALESCE_BYTES
    sock.sendall(b"head")
    sock.sendall(big)
    assert raw.calls == [("sendall", b"head"), ("sendall", big)]
    sock.sendall(b"tail")  # held again, after the large part
    sock.flush()
    assert [data for _, data in raw.calls] == [b"head", big, b"tail"]


def test_anything_else_asked_of_the_socket_sends_what_is_held_first() -> None:
    raw = Recorder()
    sock = CoalescingSocket(raw)
    sock.sendall(b"head")
    assert sock.fileno() == -1  # what sendfile() asks for
    assert raw.calls == [("sendall", b"head"), ("fileno", None)]
    sock.getsockname()
    assert raw.calls[-1] == ("getsockname", None) and len(raw.calls) == 3


def test_gunicorns_response_reaches_the_peer_in_one_write() -> None:
    """The real gunicorn Request/Response pair, as serving.keepalive uses it: one write on the
    worker's side, and the peer reads the whole answer, head first."""
    body = b'{"status":"ok"}'

    def app(environ: dict, start_response: Any) -> list[bytes]:
        assert environ["wsgi.input"].read() == b"hello"
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    nginx, worker = socket.socketpair()
    with nginx, worker:
        nginx.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        cfg = Config()
        req = next(http.get_parser(cfg, worker, ("x", 0)))
        raw = Recorder(worker)
        sock = CoalescingSocket(raw)
        resp, environ = wsgi.create(req, sock, ("x", 0), ("127.0.0.1", 8080), cfg)
        for item in app(environ, resp.start_response):
            resp.write(item)
        resp.close()
        sock.flush()
        assert [name for name, _ in raw.calls] == ["sendall"]
        nginx.settimeout(5)
        answer = nginx.recv(65536)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 15" in head and b"Connection: keep-alive" in head
    assert rest == body
