"""``serve`` for the NTM and k-NN STAND-INS (not AWS code): SageMaker's hosting contract (§1).

    python -m standins serve [--role ntm|knn] [--model-dir DIR] [--port N] [--host H]
                             [--workers W]

gunicorn (sync workers, app preloaded in the master) on ``0.0.0.0:8080`` or
``$SAGEMAKER_BIND_TO_PORT``; ``GET /ping``, ``POST /invocations``, ``GET /execution-parameters``;
the model from ``/opt/ml/model`` (``$SM_MODEL_DIR``).  Request and response formats are the
built-ins' (contract §4, §5), through ``serving.formats``.  A missing or ``*/*`` Accept means
``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (else ``application/json``); for k-NN, add
``verbose=true`` there or in Accept to get labels and distances.  Every response has a
Content-Type; refusals are 4xx with a short JSON message, never a traceback.

Environment: STANDIN_ROLE (ntm | knn, set by each image), SM_MODEL_DIR, SAGEMAKER_BIND_TO_PORT,
STANDIN_HOST (0.0.0.0), SAGEMAKER_MODEL_SERVER_WORKERS (2), SAGEMAKER_MODEL_SERVER_TIMEOUT (60),
SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, SAGEMAKER_MAX_PAYLOAD_IN_MB (body limit, at least 6 MB),
STANDIN_LOG_LEVEL (info), STANDIN_KNN_L2 (euclidean; `squared` answers squared L2 distances).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from serving import formats
from serving.cli import Parser
from serving.errors import (
    BadRequest,
    PayloadTooLarge,
    ServingError,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from serving.mediatypes import JSON, MediaType, content_type_for, negotiate, parse_content_type
from standins import NOTICE, knn, topics

log = logging.getLogger("standins.server")
ROLES = ("ntm", "knn")
MB = 1024 * 1024


@dataclass
class Role:
    """One stand-in: what it reads and writes, and how it answers."""

    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    answer: Callable[[bytes, MediaType, MediaType], bytes]
    info: dict[str, Any]


def ntm_role(model_dir: Path | str) -> Role:
    model = topics.NtmModel.load(model_dir)

    def answer(body: bytes, media: MediaType, out: MediaType) -> bytes:
        X = formats.decode_ntm_input(body, media, model.feature_dim)
        if X.data.size and X.data.min() < 0:
            raise UnprocessableEntity("word counts must not be negative")
        return formats.encode_ntm_output(topics.infer(model, X), out)

    info = {
        "algorithm": model.algorithm,
        "feature_dim": model.feature_dim,
        "num_topics": model.num_topics,
    }
    return Role("ntm", formats.NTM_INPUT_TYPES, formats.NTM_OUTPUT_TYPES, answer, info)


def knn_role(model_dir: Path | str) -> Role:
    index = knn.KnnIndex.load(model_dir)
    squared = os.environ.get("STANDIN_KNN_L2", "").strip().lower() == "squared"

    def answer(body: bytes, media: MediaType, out: MediaType) -> bytes:
        M = formats.decode_knn_input(body, media, index.feature_dim)
        predicted, labels, distances = knn.query(index, M, index.k, squared)
        return formats.encode_knn_output(predicted, labels, distances, out)

    info = {**index.hyperparameters(), "index_size": int(index.vectors.shape[0])}
    return Role("knn", formats.KNN_INPUT_TYPES, formats.KNN_OUTPUT_TYPES, answer, info)


def load_role(name: str, model_dir: Path | str) -> Role:
    if name not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {name!r}")
    return (ntm_role if name == "ntm" else knn_role)(model_dir)


def _json(status: int, doc: dict[str, Any]) -> Response:
    return Response(orjson.dumps(doc), status=status, content_type=JSON)


def create_app(
    role: Role, default_accept: str | None = None, max_body: int = 6 * MB, workers: int = 1
) -> Flask:
    """The WSGI app for one role; ``default_accept`` answers a missing or ``*/*`` Accept."""
    app = Flask(f"standins.{role.name}")
    default = (default_accept or "").strip() or JSON
    algorithm = "NTM" if role.name == "ntm" else "k-NN"
    ping_body = orjson.dumps(
        {
            "status": "ok",
            "standin": role.name,
            "notice": NOTICE.format(algorithm=algorithm),
            **role.info,
        }
    )
    exec_params = orjson.dumps(
        {"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    )

    @app.get("/ping")
    def ping() -> Response:
        return Response(ping_body, status=200, content_type=JSON)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return Response(exec_params, status=200, content_type=JSON)

    @app.post("/invocations")
    def invocations() -> Response:
        try:
            length = request.content_length
            if length is not None and length > max_body:
                raise PayloadTooLarge(f"the body is {length} bytes; the limit is {max_body}")
            body = request.stream.read(max_body + 1)
            if len(body) > max_body:
                raise PayloadTooLarge(f"the body is over the limit of {max_body} bytes")
            media = parse_content_type(request.headers.get("Content-Type"))
            if media.type not in role.input_types:
                raise UnsupportedMediaType(
                    f"{role.name} stand-in does not read {media.type[:100]}; use one of "
                    f"{', '.join(role.input_types)}"
                )
            out = negotiate(request.headers.get("Accept"), role.output_types, default)
            if not body:
                raise BadRequest("the request body is empty")
            result = role.answer(body, media, out)
            return Response(result, status=200, content_type=content_type_for(out))
        except ServingError as exc:
            log.info("%s %s: %s", exc.status, exc.code, exc.message)
            return _json(exc.status, {"error": exc.code, "message": exc.message})
        except Exception:
            log.exception("request failed")
            return _json(500, {"error": "internal_error", "message": "internal error"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return _json(
            status,
            {
                "error": exc.name.lower().replace(" ", "_"),
                "message": f"{request.method} {request.path[:100]}: {exc.name}",
            },
        )

    return app


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SystemExit(f"{name}={value} is outside {low}..{high}")
    return value


def gunicorn_app(wsgi: Any, options: dict[str, Any]) -> Any:
    from gunicorn.app.base import BaseApplication

    class StandinServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return wsgi

    return StandinServer()


def _post_fork(server: Any, worker: Any) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m standins",
        description=__doc__,
    )
    parser.add_argument("command", choices=("serve", "train"))
    parser.add_argument("--role", default=os.environ.get("STANDIN_ROLE", ""), help="ntm | knn")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR") or "/opt/ml/model")
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default=os.environ.get("STANDIN_HOST") or "0.0.0.0")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    level = os.environ.get("STANDIN_LOG_LEVEL", "info").lower()
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "train":
        print(
            "the stand-ins train locally, not in the container: python -m standins.train",
            file=sys.stderr,
        )
        return 2
    if args.role not in ROLES:
        print(f"set STANDIN_ROLE or --role to one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    port = args.port or _env_int("SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535)
    workers = args.workers or _env_int("SAGEMAKER_MODEL_SERVER_WORKERS", 2, 1, 64)
    timeout = _env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 3600)
    payload_mb = _env_int("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 1, 100)
    try:
        role = load_role(args.role, args.model_dir)
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"cannot load the {args.role} stand-in model from {args.model_dir}: {exc}",
            file=sys.stderr,
        )
        return 3
    wsgi = create_app(
        role,
        os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
        max(6, payload_mb) * MB,
        workers,
    )
    log.info(
        "%s stand-in (not AWS code) on %s:%d, %d workers, model %s: %s",
        role.name,
        args.host,
        port,
        workers,
        args.model_dir,
        role.info,
    )
    gunicorn_app(
        wsgi,
        {
            "bind": [f"{args.host}:{port}"],
            "workers": workers,
            "worker_class": "sync",
            "timeout": timeout,
            "graceful_timeout": 20,
            "keepalive": 5,
            "preload_app": True,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": level,
            "proc_name": f"standin-{role.name}",
            "post_fork": _post_fork,
            "control_socket_disable": True,
        },
    ).run()
    return 0
