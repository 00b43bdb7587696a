"""Run the model server: gunicorn, model loaded and warmed up once before the workers fork.

    python -m serving.serve [--model-dir DIR] [--port N] [--workers W] [--stage S]

The container's ``serve`` runs exactly this with no flags: every setting then comes from the
environment (see ``serving.config``). Flags override the environment for local development.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per worker; set before numpy is imported anywhere.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import gc  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from gunicorn.app.base import BaseApplication  # noqa: E402

from serving import logs  # noqa: E402
from serving.cli import Parser  # noqa: E402
from serving.config import STAGES, Settings, SettingsError  # noqa: E402
from serving.errors import ModelLoadError  # noqa: E402

log = logging.getLogger("serving.serve")


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "sync",
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": settings.keepalive,
        "preload_app": True,
        "backlog": 2048,
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": logs.gunicorn_logconfig(settings.log_level),
        "proc_name": f"sm-text-pipeline[{settings.stage}]",
        "post_fork": _post_fork,
        "control_socket_disable": True,  # gunicorn 27's admin socket: unused, needs a $HOME
    }


def _post_fork(server: Any, worker: Any) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class ModelServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose WSGI app is built (model loaded, warmed up) in the master."""

    def __init__(self, settings: Settings, application: Any) -> None:
        self.settings = settings
        self.application = application
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def load_application(settings: Settings) -> Any:
    """Load the model, run the warm-up self-test and build the WSGI app (in the master)."""
    from serving.app import create_app, load_server

    started = time.perf_counter()
    application = create_app(load_server(settings))
    gc.collect()
    gc.freeze()  # keep the loaded model's pages shared with the forked workers
    log.info("model loaded from %s and warmed up for stage %s in %.2f s",
             settings.model_dir, settings.stage, time.perf_counter() - started)
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
    logs.configure(settings.log_level)
    try:
        application = load_application(settings)
    except (ModelLoadError, SettingsError) as exc:
        log.error("cannot serve: %s", exc)
        return 3
    ModelServer(settings, application).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
