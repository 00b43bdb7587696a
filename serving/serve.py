"""Run the model server: nginx in front of gunicorn; the model loaded and warmed up once in
the gunicorn master before the workers fork.

    python -m serving.serve [--model-dir DIR] [--port N] [--workers W] [--stage S]

The container's ``serve`` runs exactly this with no flags: every setting then comes from the
environment (see ``serving.config``). Flags override the environment for local development and
are validated like it.

Process tree: the gunicorn master (this process) -> its sync workers (on a unix socket) and
nginx (``serving.front_end``, listening on the port). ``SERVING_FRONT_END=none`` serves without
nginx: gunicorn listens on the port itself.
"""

from __future__ import annotations

import os
import sys

# One BLAS/OpenMP thread per worker; set before numpy is imported anywhere.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS")
for _name in _THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")
# OpenBLAS and OpenMP read these when they are loaded: if no numpy was loaded before this point
# (``python -m serving.serve``, the container's ``serve``) and all say 1, every pool already has
# one thread and the workers need not pin them again after the fork.
_THREADS_PINNED_AT_LOAD = "numpy" not in sys.modules and all(
    os.environ[name] == "1" for name in _THREAD_VARIABLES)

import ctypes  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from gunicorn.app.base import BaseApplication  # noqa: E402
from gunicorn.arbiter import Arbiter  # noqa: E402
from gunicorn.errors import HaltServer  # noqa: E402

from serving import heap, logs  # noqa: E402
from serving.cli import Parser  # noqa: E402
from serving.config import STAGES, Settings, SettingsError  # noqa: E402
from serving.errors import ModelLoadError  # noqa: E402
from serving.front_end import FrontEnd, FrontEndError  # noqa: E402
from serving.keepalive import KeepAliveWorker  # noqa: E402
from serving.workers import JsonErrorWorker, RequestLogger  # noqa: E402

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

log = logging.getLogger("serving.serve")


# Exit code when the front end dies under a running server.
FRONT_END_EXITED = 4


def gunicorn_options(settings: Settings, front_end: FrontEnd | None = None,
                     name: str | None = None) -> dict[str, Any]:
    if front_end is not None:
        # Behind nginx, which enforces the header limits (8 KB lines, 32 KB in all): gunicorn
        # must not refuse what nginx accepted.
        bind, limits = f"unix:{front_end.socket}", (0, 32768, 0)
    else:
        bind, limits = f"{settings.host}:{settings.port}", (8190, 100, 8190)
    return {
        "bind": [bind],
        "workers": settings.workers,
        "worker_class": KeepAliveWorker if front_end is not None else JsonErrorWorker,
        "logger_class": RequestLogger,
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": settings.keepalive,
        "preload_app": True,
        "backlog": 2048,
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "limit_request_line": limits[0],
        "limit_request_fields": limits[1],
        "limit_request_field_size": limits[2],
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": logs.gunicorn_logconfig(settings.log_level),
        "proc_name": name or f"sm-text-pipeline[{settings.stage}]",
        "post_fork": _post_fork,
        "post_request": heap.after_request,
        "control_socket_disable": True,  # gunicorn 27's admin socket: unused, needs a $HOME
    }


def die_with_master(master_pid: int) -> bool:
    """Have the kernel send this worker SIGTERM when the master dies without stopping it
    (SIGKILL, the OOM killer), as nginx gets (serving/front_end.py): gunicorn's workers notice a
    new parent only between waits, up to half the worker timeout, meanwhile holding the port
    (SERVING_FRONT_END=none) and answering. prctl(2) PR_SET_PDEATHSIG; the master forks its
    workers from its main thread, which lives as long as it does. False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # not Linux
        return False
    if os.getppid() != master_pid:  # the master died before the signal was set up
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _post_fork(server: Any, worker: Any) -> None:
    """The worker dies with the master; BLAS/OpenMP pinned to one thread in the worker, unless
    the environment did already before the libraries loaded: threadpoolctl inspects every
    loaded library (~10-40 ms in a fresh worker, spent before the worker's first request,
    hence before the first /ping 200)."""
    die_with_master(worker.ppid)
    if _THREADS_PINNED_AT_LOAD:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class SupervisingArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, also starting, watching and stopping the nginx front end."""

    front_end: FrontEnd | None = None

    def start(self) -> None:
        super().start()  # binds the unix socket
        if self.front_end is not None:
            self.front_end.start()
            settings = self.app.settings
            self.log.info("nginx listening on %s:%s, in front of %s", settings.host,
                          settings.port, self.front_end.socket)

    def handle_hup(self) -> None:
        """gunicorn reloads on SIGHUP: new workers from the same preloaded model, while the old
        ones wait up to the graceful timeout for nginx to drop their kept connections, and
        the master acts on no other signal meanwhile (a SIGTERM then took 10-14 s). Nothing
        here would change (the settings are read once, the model is loaded in the master):
        ignored."""
        self.log.warning("SIGHUP ignored: the model and settings are loaded once; restart the "
                         "server to change them")

    def handle_chld(self) -> None:
        if self.front_end is not None:
            self.front_end.exited()  # reap nginx by its pid before gunicorn's waitpid(-1)
        super().handle_chld()

    def manage_workers(self) -> None:
        front_end = self.front_end
        if front_end is not None and not front_end.stopping:
            code = front_end.exited()
            if code is not None:
                how = f" with code {code}" if code else ""  # 0: another waitpid took it
                raise HaltServer(f"nginx (the front end) exited{how}; stopping rather than "
                                 "running without it", FRONT_END_EXITED)
        super().manage_workers()

    def stop(self, graceful: bool = True) -> None:
        started = time.monotonic()
        deadline = started + self.cfg.graceful_timeout
        front_end = self.front_end
        if front_end is not None and graceful:
            # nginx stops accepting and answers what is in flight, through the workers, which
            # still listen: gunicorn's stop() closes and unlinks their socket first, and nginx
            # would answer 502 to a request it read just before its SIGQUIT.
            front_end.quit()
            front_end.wait(deadline)
            # what is left of the graceful timeout, for gunicorn's own wait for its workers
            self.cfg.set("graceful_timeout", max(1, round(deadline - time.monotonic())))
        elif front_end is not None:
            front_end.terminate()  # SIGINT/SIGQUIT: quick shutdown
        super().stop(graceful)  # workers finish their requests within graceful_timeout
        if front_end is not None:
            front_end.stop(deadline + 1)


class ModelServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose WSGI app is built (model loaded, warmed up) in the master."""

    def __init__(self, settings: Settings, application: Any,
                 front_end: FrontEnd | None = None, name: str | None = None) -> None:
        self.settings = settings
        self.application = application
        self.front_end = front_end
        self.name = name
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings, self.front_end, self.name).items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application

    def run(self) -> None:
        arbiter = SupervisingArbiter(self)
        arbiter.front_end = self.front_end
        arbiter.run()


def load_application(settings: Settings) -> Any:
    """Load the model, run the warm-up self-test and build the WSGI app (in the master)."""
    from serving import digests

    # The artifact's files are hashed (for verify) in a thread while the libraries import.
    digests.prefetch(settings.model_dir)
    from serving.app import create_wsgi, load_server

    started = time.perf_counter()
    heap.tune()  # before the model loads: its temporaries go back to the kernel too
    application = create_wsgi(load_server(settings))
    # Everything loaded so far lives as long as the process: moved out of the collector's sight,
    # so the workers' collections never write to (and un-share) those pages. No gc.collect()
    # first, as the gc documentation advises for fork without exec (it would free a few
    # hundred objects into holes the workers then fill, and cost ~0.15-0.3 s here: the
    # loaded model's containers are large). https://docs.python.org/3.11/library/gc.html#gc.freeze
    gc.freeze()
    from serving import hashtable  # imported by the model already

    log.info("model loaded from %s and warmed up for stage %s in %.2f s (word scanner: %s; "
             "heap: %s)", settings.model_dir, settings.stage, time.perf_counter() - started,
             "C" if hashtable.COMPILED is not None else "numpy, serving._wordscan not built",
             heap.heap_pages(os.environ))
    return application


def parse_args(argv: list[str] | None, settings: Settings) -> Settings:
    parser = Parser(prog="python -m serving.serve", description=__doc__)
    parser.add_argument("--model-dir", help=f"default {settings.model_dir}")
    parser.add_argument("--port", type=int, help=f"default {settings.port}")
    parser.add_argument("--host", help=f"default {settings.host}")
    parser.add_argument("--workers", type=int, help=f"default {settings.workers}")
    parser.add_argument("--stage", choices=STAGES, help=f"default {settings.stage}")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in vars(args).items() if v is not None}
    return settings.replace(**changes) if changes else settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_args(argv, Settings.from_env())
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if argv is None:  # the process's own command line: it may start again, as itself
        _exec_with_huge_pages(settings)
    return run(settings, load_application)


def _exec_with_huge_pages(settings: Settings) -> None:
    """Start this command again with ``glibc.malloc.hugetlb=1`` in ``GLIBC_TUNABLES`` (glibc
    reads it only at start; serving.heap says why) unless it is set or ``SERVING_HUGE_PAGES``
    is off. The image's entry point sets it itself, so a container starts once."""
    value = heap.tunables(os.environ.get(heap.TUNABLES_ENV)) if settings.huge_pages else None
    if value is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                  {**os.environ, heap.TUNABLES_ENV: value})
    except OSError as exc:  # serve anyway, with 4 KB pages
        print(f"could not restart with {heap.TUNABLES_ENV}={value}: {exc}", file=sys.stderr)


class StoppedStarting(Exception):
    """SIGTERM arrived before the server was up."""


def _stop_starting(signum: int, frame: Any) -> None:
    raise StoppedStarting


def run(settings: Settings, load: Callable[[Settings], Any], name: str | None = None) -> int:
    """Serve the WSGI app ``load(settings)`` builds (in this process, the gunicorn master, before
    the workers fork) with ``settings``' front end, workers and limits; the exit code.

    ``serving.serve`` loads the model's stage; the NTM/k-NN stand-ins load theirs (``name``
    names the processes)."""
    logs.configure(settings.log_level)
    front_end = None
    # Until gunicorn's arbiter sets its own handlers, SIGTERM (SageMaker stopping a container
    # still starting) ends start-up through the cleanup below, not by the default action.
    signal.signal(signal.SIGTERM, _stop_starting)
    try:
        if settings.front_end == "nginx":
            front_end = FrontEnd(settings)
        # No cyclic garbage collection while the libraries import and the model loads (~10 % of
        # the import CPU time here went to collections; what they load lives for the whole
        # process). load_application freezes it at its end.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            application = load(settings)
        finally:
            if gc_enabled:
                gc.enable()
        ModelServer(settings, application, front_end, name).run()
    except (ModelLoadError, SettingsError, FrontEndError) as exc:
        log.error("cannot serve: %s", exc)
        return 3
    except StoppedStarting:
        log.info("stopped by SIGTERM while starting")
        return 0
    finally:
        if front_end is not None:
            front_end.stop(time.monotonic())  # the server has stopped (or never started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
