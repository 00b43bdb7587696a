"""The nginx front end as a child process of the gunicorn master: start, watch, stop.

``serving.serve`` starts it once gunicorn listens on its unix socket, halts the server if it
exits (no half-alive server), and on SIGTERM sends it SIGQUIT (stop accepting, finish what is
in flight) while gunicorn drains its workers. nginx's stderr (its error log and the JSON lines
of the requests it answers itself) is relayed to our stderr as JSON lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import orjson

from serving import nginx_conf
from serving.config import ENV_FRONT_END, Settings

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
# "2026/12/01 20:11:36 [error] 12#12: *5 message, client: 127.0.0.1, server: ..., request: ..."
ERROR_LINE = re.compile(
    rb"^(?P<date>\d{4})/(?P<month>\d\d)/(?P<day>\d\d) (?P<clock>\d\d:\d\d:\d\d) "
    rb"\[(?P<level>\w+)\] \d+#\d+: (?:\*\d+ )?(?P<message>.*?)(?:, client: .*)?$")
LEVELS = {b"emerg": "CRITICAL", b"alert": "CRITICAL", b"crit": "CRITICAL", b"error": "ERROR",
          b"warn": "WARNING", b"notice": "DEBUG", b"info": "INFO", b"debug": "DEBUG"}
RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# What a client did (too large, malformed, went away, too slow) is not a server error.
CLIENT_MESSAGE = re.compile(rb"^client |while reading client request|client request (headers|body)")
# Expected and harmless: a body or an answer larger than nginx's memory buffers.
QUOTED = re.compile(rb'"[^"]*(?:"|$)')
QUIET_MESSAGE = re.compile(rb"is buffered to a temporary file|closed keepalive connection")


class FrontEndError(Exception):
    """nginx is missing or could not start."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (path for path in NGINX_CANDIDATES if os.access(path, os.X_OK)), None)
    if not found:
        raise FrontEndError(
            f"nginx is not installed ({ENV_FRONT_END}=nginx): install Debian's nginx package "
            f"(scripts/setup.sh does), or set {ENV_FRONT_END}=none to serve without it")
    return found


class FrontEnd:
    """nginx in front of gunicorn's unix socket, in a private temporary directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.binary = nginx_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="sm-serve-"))
        if len(str(self.workdir)) > 80:  # a unix socket path is limited to 107 bytes
            shutil.rmtree(self.workdir)
            self.workdir = Path(tempfile.mkdtemp(prefix="sm-serve-", dir="/tmp"))
        if os.geteuid() == 0:
            self.workdir.chmod(0o711)  # nginx's workers (nobody) reach the socket and temp dirs
        self.socket = self.workdir / "model-server.sock"
        self.config = self.workdir / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None
        self.recent: deque[str] = deque(maxlen=5)
        self.stopping = False
        self._relay: threading.Thread | None = None
        self._owner = os.getpid()

    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration, start nginx, and return once it listens."""
        self.config.write_text(nginx_conf.render(self.settings, self.workdir, self.socket))
        pidfile = self.workdir / "nginx.pid"
        command = [self.binary, "-e", "stderr", "-p", f"{self.workdir}/", "-c", str(self.config)]
        setpriv = shutil.which("setpriv")  # util-linux: in every Debian (and this image)
        if setpriv:
            # nginx gets SIGTERM (a fast shutdown) if this process dies without stopping it
            # (SIGKILL, the OOM killer): no orphan left holding the port. setpriv sets the
            # parent-death signal, which survives its exec of nginx (prctl(2) PR_SET_PDEATHSIG);
            # the parent is this thread, the arbiter's main thread, which lives as long as we do.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "TZ": "UTC"},
            start_new_session=True)  # signals reach nginx from us only (not a terminal's ^C)
        self._relay = threading.Thread(target=self._relay_stderr, name="nginx-log", daemon=True)
        self._relay.start()
        deadline = time.monotonic() + timeout
        # nginx writes its pid file once its listening socket is bound.
        while not pidfile.exists():
            if self.process.poll() is not None:
                self._relay.join(2)
                raise FrontEndError(
                    f"nginx could not start on {nginx_conf.listen_address(self.settings)}: "
                    + ("; ".join(dict.fromkeys(self.recent))
                       or f"exit code {self.process.returncode}"))
            if time.monotonic() > deadline:
                self.process.kill()
                raise FrontEndError(f"nginx did not start within {timeout:.0f} s")
            time.sleep(0.002)  # nginx is up within ~10-30 ms: workers fork only after this

    def exited(self) -> int | None:
        """nginx's exit code once it has exited (0 if another waitpid took its status)."""
        return None if self.process is None else self.process.poll()

    def quit(self) -> None:
        """Graceful stop: nginx closes its listener and finishes the requests in flight."""
        if os.getpid() != self._owner:  # a forked gunicorn worker on its way out
            return
        self.stopping = True
        self._signal(signal.SIGQUIT)

    def wait(self, deadline: float) -> bool:
        """Wait until nginx has exited or ``deadline`` (time.monotonic()); True if it has."""
        if self.process is None or os.getpid() != self._owner:
            return True
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def terminate(self) -> None:
        """Quick stop (nginx's SIGTERM)."""
        if os.getpid() == self._owner:
            self.stopping = True
            self._signal(signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Wait for nginx until ``deadline`` (time.monotonic()), then end it; clean up."""
        if os.getpid() != self._owner:  # a forked gunicorn worker on its way out
            return
        self.stopping = True
        if self.process is not None:
            for sig, until in ((None, deadline), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
                if sig is not None:
                    self._signal(sig)
                    until = time.monotonic() + until
                try:
                    self.process.wait(max(0.0, until - time.monotonic()))
                    break
                except subprocess.TimeoutExpired:
                    continue
            # nginx's own session: a worker orphaned by a killed master goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            if self._relay is not None:
                self._relay.join(1)
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def _relay_stderr(self) -> None:
        """Copy nginx's stderr to ours as JSON lines. Writes with os.write (no Python locks:
        gunicorn forks workers while this thread runs)."""
        assert self.process is not None and self.process.stderr is not None
        fd = self.process.stderr.fileno()
        threshold = RANK[self.settings.log_level]
        pending = b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._emit(line, threshold)
        if pending:
            self._emit(pending, threshold)

    def _emit(self, line: bytes, threshold: int) -> None:
        """One line out; never raises (a dead relay would leave nginx blocked on its stderr)."""
        try:
            out = self._format(line, threshold)
            if out:
                os.write(2, out)
        except Exception:  # keep draining whatever happens
            with contextlib.suppress(OSError):
                os.write(2, b'{"level":"ERROR","logger":"nginx","message":"unreadable log line"}\n')

    def _format(self, line: bytes, threshold: int) -> bytes | None:
        line = line.strip()
        if not line:
            return None
        if line.startswith(b"{"):  # a request nginx answered, already a JSON line
            try:
                level = orjson.loads(line).get("level", "INFO")
            except orjson.JSONDecodeError:
                level = "INFO"
            return line + b"\n" if RANK.get(level, 20) >= threshold else None
        match = ERROR_LINE.match(line)
        if match is None:
            entry = {"level": "ERROR", "message": line.decode(errors="replace")}
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        else:
            message = match["message"]
            level = LEVELS.get(match["level"], "INFO")
            if QUIET_MESSAGE.search(message):
                level = "DEBUG"
            elif CLIENT_MESSAGE.search(message) and RANK[level] > RANK["INFO"]:
                level = "INFO"
            # nginx quotes what the client sent (a header line, a URI): keep it out of the logs.
            message = QUOTED.sub(b'"..."', message)
            entry = {"level": level, "message": message.decode(errors="replace")}
            stamp = (f"{match['date'].decode()}-{match['month'].decode()}-"
                     f"{match['day'].decode()}T{match['clock'].decode()}.000Z")
            if RANK[level] >= RANK["WARNING"]:
                self.recent.append(entry["message"])
        if RANK[entry["level"]] < threshold:
            return None
        return orjson.dumps({"time": stamp, "level": entry["level"], "logger": "nginx",
                             "message": entry["message"]}) + b"\n"


def check(settings: Settings) -> str:
    """``nginx -t`` on the configuration these settings generate (the image build runs it)."""
    workdir = Path(tempfile.mkdtemp(prefix="sm-nginx-check-"))
    try:
        if os.geteuid() == 0:
            workdir.chmod(0o711)
        config = workdir / "nginx.conf"
        config.write_text(nginx_conf.render(settings, workdir, workdir / "model-server.sock"))
        result = subprocess.run(
            [nginx_binary(), "-t", "-q", "-e", "stderr", "-p", f"{workdir}/", "-c", str(config)],
            capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise FrontEndError(f"nginx -t failed: {result.stderr.strip()}")
        return f"nginx configuration OK ({nginx_binary()})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    import sys

    try:
        print(check(Settings.from_env()))
    except (FrontEndError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
