"""gunicorn's sync worker, answering its own errors as the app does: JSON with a request id.

gunicorn writes an HTML page for what it refuses itself (a malformed request line or header, a
bad chunk, limits) and for a request its worker timeout interrupts (gunicorn
workers/base.py ``handle_error``). This worker sends ``{"error", "message", "request_id"}``
instead, logs client errors at INFO without a traceback, and a timed-out request at ERROR.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import uuid
from typing import Any

import orjson
from gunicorn import glogging, util
from gunicorn.http import errors
from gunicorn.workers.sync import StopWaiting, SyncWorker

from serving import logs
from serving.config import ENV_TIMEOUT
from serving.hot_routes import VALID_ID

access_log = logging.getLogger(logs.ACCESS)
log = logging.getLogger("serving.workers")
REASONS = {400: "Bad Request", 403: "Forbidden", 414: "URI Too Long", 417: "Expectation Failed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}

# (status, code, message) for gunicorn's parse errors; any other ParseException is a 400.
CLIENT_ERRORS: list[tuple[type[BaseException], int, str, str]] = [
    (errors.LimitRequestLine, 414, "uri_too_long", "the request line is too long"),
    (errors.LimitRequestHeaders, 431, "request_header_fields_too_large",
     "too many or too large header fields"),
    (errors.UnsupportedTransferCoding, 501, "not_implemented", "unsupported Transfer-Encoding"),
    (errors.ExpectationFailed, 417, "expectation_failed", "unsupported Expect header"),
    (errors.ForbiddenProxyRequest, 403, "forbidden", "request forbidden"),
    ((errors.InvalidChunkSize, errors.ChunkMissingTerminator, errors.InvalidChunkExtension),
     400, "bad_request", "malformed chunked body"),  # type: ignore[list-item]
]


class RequestLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger without its access log: every request is logged once, as a JSON line,
    by the app (``serving.hot_routes``, ``serving.app``) or :class:`JsonErrorWorker`.

    gunicorn treats the access log as on whenever a ``logconfig_dict`` is set (ours formats its
    own messages as JSON), and then builds a dict of every header and environ entry for each
    request before the ``gunicorn.access`` logger (at WARNING) drops the record: ~9 % of a
    worker's time under load (py-spy, 8 connections). Source: gunicorn 27.0.1
    ``gunicorn/glogging.py``, ``Logger._compute_access_log_enabled`` (``accesslog or logconfig
    or logconfig_dict or ...``) and ``Logger.access``, which builds ``atoms()`` first."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def request_id_of(req: Any) -> str:
    for name, value in getattr(req, "headers", None) or ():
        if name == "X-AMZN-SAGEMAKER-INFERENCE-ID" and VALID_ID.fullmatch(value):
            return str(value)
    return uuid.uuid4().hex


def classify(exc: BaseException, timeout: int) -> tuple[int, str, str]:
    if isinstance(exc, SystemExit) and exc.code == 0:  # SIGINT/SIGQUIT: gunicorn's quick stop
        return 503, "service_unavailable", "the server is stopping (a quick shutdown)"
    if isinstance(exc, SystemExit):  # gunicorn's worker timeout (SIGABRT) exits with 1
        return (504, "timeout", f"the request did not finish within the worker timeout "
                f"({ENV_TIMEOUT}={timeout} s)")
    if isinstance(exc, (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName,
                        errors.ConfigurationProblem)) or not isinstance(exc, errors.ParseException):
        return 500, "internal_error", "internal error"
    for kinds, status, code, message in CLIENT_ERRORS:
        if isinstance(exc, kinds):
            return status, code, message
    return 400, "bad_request", f"malformed request ({type(exc).__name__})"


class JsonErrorWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker with JSON errors (below) and one wake-up per connection.

    gunicorn's sync workers all wait in ``select()`` on the shared listening socket, so each
    connection wakes every idle worker; all but one then find nothing to accept and wait again.
    SageMaker runs one worker per CPU (``SAGEMAKER_MODEL_SERVER_WORKERS``' default), so on a
    36-CPU instance a request woke ~36 processes. Here each worker waits in an epoll set that
    holds the listening sockets with ``EPOLLEXCLUSIVE`` (Linux 4.5+: "one or more" of the
    waiters is woken, epoll_ctl(2)) and its signal pipe as before. Where epoll or the flag is
    missing, gunicorn's ``select()`` as before."""

    _poller: Any = None
    _ready: dict[int, Any]

    def run(self) -> None:
        exclusive = getattr(select, "EPOLLEXCLUSIVE", None)
        if exclusive is not None and hasattr(select, "epoll"):
            try:
                poller = select.epoll()
                self._ready = {}
                for listener in self.sockets:
                    poller.register(listener.fileno(), select.EPOLLIN | exclusive)
                    self._ready[listener.fileno()] = listener
                poller.register(self.PIPE[0], select.EPOLLIN)
                self._ready[self.PIPE[0]] = self.PIPE[0]
                self._poller = poller
            except OSError as exc:  # a kernel without it: select() as gunicorn does
                log.info("listening with select(), not epoll (%s)", exc)
                self._poller = None
        super().run()

    def wait(self, timeout: float) -> list[Any] | None:
        poller = self._poller
        if poller is None:
            return super().wait(timeout)  # type: ignore[no-any-return]
        try:
            self.notify()
            events = poller.poll(timeout)
        except OSError as exc:  # as gunicorn's select(): EINTR retries, EBADF on shutdown
            if exc.errno == errno.EINTR:
                return self.sockets  # type: ignore[no-any-return]
            if exc.errno == errno.EBADF:
                if self.nr < 0:
                    return self.sockets  # type: ignore[no-any-return]
                raise StopWaiting from None
            raise
        if not events:
            return None
        ready = []
        for fd, _mask in events:
            if fd == self.PIPE[0]:
                os.read(fd, 1)  # level-triggered: readable, so this does not block
            ready.append(self._ready.get(fd, fd))
        return ready

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, code, message = classify(exc, self.cfg.timeout)
        request_id = request_id_of(req)
        if code == "internal_error":
            log.error("request %s failed in gunicorn", request_id, exc_info=exc)
            message = f"internal error; quote request id {request_id}"
        elif code == "timeout":
            log.error("request %s stopped by the worker timeout", request_id)
            message += f"; quote request id {request_id}"
        elif code == "service_unavailable":
            log.warning("request %s stopped by a quick shutdown", request_id)
        logs.log_request(access_log, {"request_id": request_id, "status": status,
                                      "error": code, "source": "gunicorn"})
        body = orjson.dumps({"error": code, "message": message, "request_id": request_id})
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Request-Id: {request_id}\r\nConnection: close\r\n\r\n")
        try:
            util.write(client, head.encode("latin-1") + body)
        except Exception:  # the client has gone
            log.debug("could not send the %s answer of request %s", status, request_id)
