"""``serve`` for the NTM and k-NN STAND-INS (not AWS code): SageMaker's hosting contract (§1).

    python -m standins serve [--role ntm|knn] [--model-dir DIR] [--port N] [--host H]
                             [--workers W]

Each stand-in is a stage on serving's HTTP layer (``serving.app``: ``GET /ping``, ``POST
/invocations``, ``GET /execution-parameters``, body limits, content negotiation, JSON errors) and
process model (``serving.serve``: gunicorn sync workers, the model loaded and warmed up in the
master, one BLAS thread a worker), so its settings are serving's (``serving.config``): port
``$SAGEMAKER_BIND_TO_PORT`` (8080), workers, timeout, ``$SAGEMAKER_MAX_PAYLOAD_IN_MB``, the
model from ``$SM_MODEL_DIR`` (``/opt/ml/model``).  What stays its own is what the real built-ins
own: the wire decoding and answers of contract §4 (NTM) and §5 (k-NN), through
``serving.formats``.  A missing or ``*/*`` Accept means ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
(else ``application/json``); for k-NN, add ``verbose=true`` there or in Accept to get labels and
distances.

Stand-in specifics: STANDIN_ROLE (ntm | knn, set by each image), STANDIN_HOST (the listening
address; else SERVING_HOST, which the image sets to 0.0.0.0), STANDIN_LOG_LEVEL (else
SERVING_LOG_LEVEL), two workers unless SAGEMAKER_MODEL_SERVER_WORKERS says otherwise,
STANDIN_KNN_L2 (euclidean; ``squared`` answers squared L2 distances).  As the built-ins, a
stand-in ignores SAGEMAKER_BATCH (its answers are the same in a transform job), serves without
the nginx front end, and caps no answer below 1 GiB.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from serving import formats
from serving.app import Server, create_app
from serving.cli import Parser
from serving.config import LIMITS, Settings, SettingsError
from serving.errors import ModelLoadError, UnprocessableEntity
from serving.mediatypes import JSON, TEXT_CSV, MediaType
from serving.serve import run
from serving.stages import Options, Stage
from standins import NOTICE, knn, topics

ROLES = ("ntm", "knn")


def ntm_stage(model_dir: Path | str) -> Stage:
    model = topics.NtmModel.load(model_dir)

    def decode(body: bytes, media: MediaType) -> Any:
        return formats.decode_ntm_input(body, media, model.feature_dim)

    def infer(X: Any, options: Options) -> np.ndarray:
        if X.data.size and X.data.min() < 0:
            raise UnprocessableEntity("word counts must not be negative")
        return topics.infer(model, X)

    def encode(W: np.ndarray, media: MediaType) -> bytes:
        return formats.encode_ntm_output(W, media)

    info = {"algorithm": model.algorithm, "feature_dim": model.feature_dim,
            "num_topics": model.num_topics}
    warm = orjson.dumps({"instances": [{"features": [1] * model.feature_dim}]})
    return Stage("ntm", formats.NTM_INPUT_TYPES, formats.NTM_OUTPUT_TYPES, JSON, decode, infer,
                 encode, (warm, JSON, JSON), _ping_info("ntm", "NTM", info))


def knn_stage(model_dir: Path | str, squared: bool = False) -> Stage:
    index = knn.KnnIndex.load(model_dir)

    def decode(body: bytes, media: MediaType) -> np.ndarray:
        return formats.decode_knn_input(body, media, index.feature_dim)

    def query(M: np.ndarray, options: Options) -> tuple[np.ndarray, Any, Any]:
        return knn.query(index, M, index.k, squared)

    def encode(result: tuple[np.ndarray, Any, Any], media: MediaType) -> bytes:
        return formats.encode_knn_output(*result, media)

    info = {**index.hyperparameters(), "index_size": int(index.vectors.shape[0])}
    warm = (",".join(["1"] * index.feature_dim) + "\n").encode()
    return Stage("knn", formats.KNN_INPUT_TYPES, formats.KNN_OUTPUT_TYPES, JSON, decode, query,
                 encode, (warm, TEXT_CSV, JSON), _ping_info("knn", "k-NN", info))


def _ping_info(role: str, algorithm: str, info: dict[str, Any]) -> dict[str, Any]:
    return {"standin": role, "notice": NOTICE.format(algorithm=algorithm), **info}


def load_stage(role: str, model_dir: Path | str, env: Mapping[str, str] | None = None) -> Stage:
    env = os.environ if env is None else env
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if role == "ntm":
        return ntm_stage(model_dir)
    return knn_stage(model_dir, env.get("STANDIN_KNN_L2", "").strip().lower() == "squared")


def standin_settings(env: Mapping[str, str] | None = None, **changes: Any) -> Settings:
    """serving's Settings from the environment, with the stand-ins' own defaults and names."""
    env = dict(os.environ if env is None else env)
    for ours, theirs in (("STANDIN_HOST", "SERVING_HOST"), ("STANDIN_LOG_LEVEL",
                                                            "SERVING_LOG_LEVEL")):
        if env.get(ours, "").strip():
            env[theirs] = env[ours]
    if not (env.get("SAGEMAKER_MODEL_SERVER_WORKERS", "") + env.get("MODEL_SERVER_WORKERS",
                                                                      "")).strip():
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = "2"
    settings = Settings.from_env(env)
    return settings.replace(**{"batch": False, "front_end": "none",
                               "max_response_bytes": LIMITS["max_response_bytes"][1], **changes})


def application(stage: Stage, settings: Settings) -> Any:
    """The warmed-up WSGI app of one stand-in (what each gunicorn worker serves)."""
    server = Server(None, settings, stage)
    server.warm_up()
    return create_app(server)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m standins", description=__doc__)
    parser.add_argument("command", choices=("serve", "train"))
    parser.add_argument("--role", default=os.environ.get("STANDIN_ROLE", ""), help="ntm | knn")
    parser.add_argument("--model-dir", help="default $SM_MODEL_DIR, else /opt/ml/model")
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    if args.command == "train":
        print("the stand-ins train locally, not in the container: python -m standins.train",
              file=sys.stderr)
        return 2
    if args.role not in ROLES:
        print(f"set STANDIN_ROLE or --role to one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("model_dir", args.model_dir), ("port", args.port),
                                   ("host", args.host), ("workers", args.workers)) if v}
    try:
        settings = standin_settings(**overrides)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    def load(settings: Settings) -> Any:
        try:
            stage = load_stage(args.role, settings.model_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load the {args.role} stand-in model from "
                                 f"{settings.model_dir}: {exc}") from None
        return application(stage, settings)

    return run(settings, load, name=f"standin-{args.role}")
