"""The sync worker behind nginx, keeping nginx's connections open between requests.

gunicorn's sync worker closes every connection after one request ("until someone shows a
buffering proxy that supports Keep-Alive to the backend", gunicorn ``workers/sync.py``). nginx
is one: it reads each request whole before it sends it to the worker and buffers each answer
(``serving/nginx_conf.py``), so a connection from nginx never holds a worker while a client is
slow. nginx keeps idle connections to its upstream when told to (``keepalive`` in the upstream
block, HTTP/1.1 and an empty ``Connection`` header: nginx's ``ngx_http_upstream_module``
documentation); without it nginx connected, and the worker accepted and closed, a unix socket
per request: ~155 µs of the server's CPU a request at concurrency 8 (interleaved A/B, 2
workers: 548 against 392 µs a post, 3,161 against 4,489 posts/s).

How the worker keeps that safe:

- It serves nginx only (the unix socket in the server's private directory); without the front
  end (``SERVING_FRONT_END=none``), clients reach gunicorn's own sync worker, which closes.
- It never waits on one connection: the connections it keeps sit in the same epoll set as the
  listening socket (:class:`serving.workers.JsonErrorWorker`), and a request is read only once
  its connection is readable. What a request did not read of its body is drained before the
  answer's connection goes back into the set, so a readable connection is always a new request.
- It never closes an idle connection while it runs: nginx does not send a POST again on
  another connection once it was written to a closed one, so that client would get a 502.
  nginx closes idle connections itself (``keepalive_timeout``, ``keepalive_requests``); the
  worker ends one only by answering with ``Connection: close`` (while stopping, over
  :data:`MAX_CONNECTIONS`, after an error).
- Stopping (SIGTERM), it stops accepting, answers what still arrives on its connections with
  ``Connection: close`` and waits for nginx to close the rest, until ``graceful_timeout``.
  Aborted by gunicorn's worker timeout, it answers the request's 504 and exits at once, as
  gunicorn's sync worker does (the arbiter then starts another).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import select
import sys
import time
from datetime import datetime
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.sync import StopWaiting

from serving.workers import JsonErrorWorker

log = logging.getLogger("serving.workers")


def max_connections() -> int:
    """Connections a worker keeps open at most: a quarter of its open-file limit, at most 256
    (nginx keeps 8 idle ones per nginx worker; more are open only while requests are in
    flight)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(1, min(256, soft // 4))


MAX_CONNECTIONS = max_connections()


# An answer's head and body go to nginx in one write when together at most this long; a longer
# body is written on its own (no copy of it), after the head.
COALESCE_BYTES = 64 * 1024


class Connection:
    """One connection from nginx: its socket, gunicorn's parser (which keeps what it has read
    ahead) and the listening socket's name (gunicorn's environ wants it every request)."""

    __slots__ = ("addr", "client", "fd", "listener_name", "parser")

    def __init__(self, client: Any, addr: Any, listener: Any, parser: Any) -> None:
        self.client, self.addr, self.parser = client, addr, parser
        self.listener_name = listener.getsockname()
        self.fd: int = client.fileno()


class CoalescingSocket:
    """The socket gunicorn's ``Response`` writes one answer to: it sends the head and then each
    body part with a ``sendall`` apiece, two writes (and two wake-ups of nginx) for every
    answer. Parts are held until :meth:`flush` (the answer is complete) or until they pass
    :data:`COALESCE_BYTES`; anything else asked of the socket (``sendfile``, ``fileno``, ``send``
    of a ``100 Continue``) first sends what is held, so the order on the wire never changes."""

    __slots__ = ("held", "size", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock, self.held, self.size = sock, [], 0

    def sendall(self, data: bytes) -> None:
        if self.size + len(data) <= COALESCE_BYTES:
            self.held.append(data)
            self.size += len(data)
            return
        self.flush()
        self.sock.sendall(data)

    def flush(self) -> None:
        if self.held:
            held, self.held, self.size = self.held, [], 0
            self.sock.sendall(held[0] if len(held) == 1 else b"".join(held))

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self.sock, name)


class KeepAliveWorker(JsonErrorWorker):
    """:class:`JsonErrorWorker` that keeps nginx's connections open (see the module docstring).
    Without epoll (no ``EPOLLEXCLUSIVE``) it is that worker, closing each connection."""

    _connections: dict[int, Connection]
    requests_served = 0
    connections_accepted = 0
    stopping_gracefully = False  # SIGTERM or max_requests; not gunicorn's abort (timeout)

    def handle_exit(self, sig: Any, frame: Any) -> None:
        self.stopping_gracefully = True
        super().handle_exit(sig, frame)

    def run_for_one(self, timeout: float) -> None:
        self._serve(timeout)

    def run_for_multiple(self, timeout: float) -> None:
        self._serve(timeout)

    def _serve(self, timeout: float) -> None:
        if self._poller is None:  # select(): gunicorn's loop, a connection per request
            super().run_for_multiple(timeout)
            return
        self._connections = {}
        try:
            while self.alive:
                try:
                    ready = self.wait(timeout)  # which tells the arbiter the worker is alive
                except StopWaiting:
                    return
                for item in ready or ():
                    if isinstance(item, Connection):
                        self._next_request(item)
                    elif item != self.PIPE[0]:
                        self._accept(item)
                if not self.is_parent_alive():
                    return
            if self.stopping_gracefully:
                self._finish()
        finally:
            for connection in list(self._connections.values()):
                self._close(connection)
            log.info("worker %s served %d requests on %d connections from nginx", self.pid,
                     self.requests_served, self.connections_accepted)

    def _accept(self, listener: Any) -> None:
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        client.setblocking(1)
        util.close_on_exec(client)
        self.connections_accepted += 1
        self._next_request(Connection(client, addr, listener,
                                      http.get_parser(self.cfg, client, addr)))

    def _next_request(self, connection: Connection) -> None:
        """Read and answer the request waiting on ``connection``; keep it or close it."""
        req, keep = None, False
        client, addr = connection.client, connection.addr
        try:
            req = next(connection.parser)
            keep = self._handle(connection, req)
        except http.errors.NoMoreData:
            self.log.debug("nginx closed a connection")
        except StopIteration:
            self.log.debug("closing a connection")
        except OSError as exc:  # as gunicorn's sync worker
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as exc:
            self.handle_error(req, client, addr, exc)
        if not keep:
            self._close(connection)
        elif connection.fd not in self._connections:
            self._poller.register(connection.fd, select.EPOLLIN)  # level-triggered
            self._ready[connection.fd] = connection
            self._connections[connection.fd] = connection

    def _close(self, connection: Connection) -> None:
        if self._connections.pop(connection.fd, None) is not None:
            self._ready.pop(connection.fd, None)
            with contextlib.suppress(OSError, ValueError):
                self._poller.unregister(connection.fd)
        util.close_graceful(connection.client)

    def _handle(self, connection: Connection, req: Any) -> bool:
        """gunicorn's ``SyncWorker.handle_request``, without its forced close; True when the
        connection stays open (the answer said ``Connection: keep-alive``)."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            sock = CoalescingSocket(connection.client)
            resp, environ = wsgi.create(req, sock, connection.addr, connection.listener_name,
                                        self.cfg)
            self.nr += 1
            self.requests_served += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive, self.stopping_gracefully = False, True
            if not self.alive or (connection.fd not in self._connections
                                  and len(self._connections) >= MAX_CONNECTIONS):
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
                sock.flush()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            if resp.should_close():
                return False
            # nginx sent the whole body before the request's answer; what the app did not read
            # is drained now, so that the next readable event is the next request.
            while req.body.read(65536):
                pass
            return True
        except OSError:
            util.reraise(*sys.exc_info())
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                self.log.exception("Error handling request")
                util.close_graceful(connection.client)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return False  # unreachable; for the type checker

    def _finish(self) -> None:
        """Stopping: no new connections; answer what arrives on the open ones (closing each
        after its answer) until nginx has closed them all or ``graceful_timeout`` is near."""
        for listener in self.sockets:
            self._ready.pop(listener.fileno(), None)
            with contextlib.suppress(OSError, ValueError):
                self._poller.unregister(listener.fileno())
        deadline = time.monotonic() + max(0.5, self.cfg.graceful_timeout - 1.0)
        while self._connections and time.monotonic() < deadline and self.is_parent_alive():
            self.notify()
            try:
                events = self._poller.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            except OSError:
                return
            for fd, _mask in events:
                connection = self._connections.get(fd)
                if connection is not None:
                    self._next_request(connection)
                elif fd == self.PIPE[0]:
                    os.read(fd, 1)
