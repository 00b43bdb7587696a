"""Every environment variable the server reads, with its default, in one typed object.

The object is built once at start-up (``Settings.from_env()``) and passed down; nothing else in
the package reads ``os.environ`` for serving behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

STAGES = ("classify", "ntm-features", "topics-to-knn", "recommend")

# Environment variable names (SageMaker's own first, then this project's).
ENV_PORT = "SAGEMAKER_BIND_TO_PORT"
ENV_SAFE_PORT_RANGE = "SAGEMAKER_SAFE_PORT_RANGE"
ENV_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
ENV_WORKERS_LEGACY = "MODEL_SERVER_WORKERS"
ENV_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
ENV_TIMEOUT_LEGACY = "MODEL_SERVER_TIMEOUT"
ENV_DEFAULT_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
ENV_MAX_PAYLOAD_MB = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
ENV_BATCH = "SAGEMAKER_BATCH"
ENV_STAGE = "SERVING_STAGE"
ENV_MODEL_DIR = "SM_MODEL_DIR"
ENV_MAX_BODY = "SERVING_MAX_REQUEST_BYTES"
ENV_MAX_RECORDS = "SERVING_MAX_RECORDS"
ENV_MAX_DOC_CHARS = "SERVING_MAX_DOC_CHARS"
ENV_TOP_K = "SERVING_TOP_K"
ENV_NUM_TOPICS = "SERVING_NUM_TOPICS"
ENV_LOG_LEVEL = "SERVING_LOG_LEVEL"
ENV_GRACEFUL = "SERVING_GRACEFUL_TIMEOUT"
ENV_KEEPALIVE = "SERVING_KEEPALIVE"
ENV_HOST = "SERVING_HOST"
ENV_KNN_METRIC = "SERVING_KNN_METRIC"
ENV_KNN_DISTANCE = "SERVING_KNN_DISTANCE"
ENV_RECOMMENDATIONS = "SERVING_RECOMMENDATIONS"
KNN_METRICS = ("L2", "COSINE", "INNER_PRODUCT")
KNN_DISTANCES = ("euclidean", "squared")


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


def _int(env: Mapping[str, str], *names: str, default: int, low: int, high: int) -> int:
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a whole number") from None
            if not low <= value <= high:
                raise SettingsError(f"{name}={value} is outside {low}..{high}")
            return value
    return default


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not true/false")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    value = raw.upper() if choices[0].isupper() else raw.lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r}; expected one of {', '.join(choices)}")
    return value


def _port_range(raw: str) -> tuple[int, int] | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        low, high = (int(part) for part in raw.split("-", 1))
    except ValueError:
        raise SettingsError(f"{ENV_SAFE_PORT_RANGE}={raw!r} is not 'LOW-HIGH'") from None
    if not 1 <= low <= high <= 65535:
        raise SettingsError(f"{ENV_SAFE_PORT_RANGE}={raw!r} is not a valid port range")
    return low, high


@dataclass(frozen=True, slots=True)
class Settings:
    """Server settings. Build with :meth:`from_env`; override fields with :meth:`replace`."""

    stage: str = "classify"
    model_dir: str = "/opt/ml/model"
    host: str = "0.0.0.0"
    port: int = 8080
    safe_port_range: tuple[int, int] | None = None
    workers: int = 1
    timeout: int = 60
    graceful_timeout: int = 20
    keepalive: int = 5
    default_accept: str = ""
    max_request_bytes: int = 6 * 1024 * 1024
    max_payload_mb: int = 6
    max_records: int = 10_000
    max_doc_chars: int = 100_000
    top_k: int = 3
    num_topics: int | None = None
    batch: bool = False
    log_level: str = "INFO"
    knn_metric: str = "L2"
    knn_distance: str = "euclidean"
    recommendations: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get(ENV_STAGE, "classify").strip() or "classify"
        if stage not in STAGES:
            raise SettingsError(f"{ENV_STAGE}={stage!r}; expected one of {', '.join(STAGES)}")
        payload_mb = _int(env, ENV_MAX_PAYLOAD_MB, default=6, low=1, high=100)
        # A batch job sends up to MaxPayloadInMB per request; a real-time endpoint 6 MB.
        default_body = max(6 * 1024 * 1024, payload_mb * 1024 * 1024)
        log_level = env.get(ENV_LOG_LEVEL, "INFO").strip().upper() or "INFO"
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{ENV_LOG_LEVEL}={log_level!r} is not a logging level")
        num_topics = _int(env, ENV_NUM_TOPICS, default=0, low=0, high=10_000)
        return cls(
            stage=stage,
            model_dir=env.get(ENV_MODEL_DIR, "").strip() or "/opt/ml/model",
            host=env.get(ENV_HOST, "").strip() or "0.0.0.0",
            port=_int(env, ENV_PORT, default=8080, low=1, high=65535),
            safe_port_range=_port_range(env.get(ENV_SAFE_PORT_RANGE, "")),
            workers=_int(
                env, ENV_WORKERS, ENV_WORKERS_LEGACY, default=os.cpu_count() or 1, low=1, high=64
            ),
            timeout=_int(env, ENV_TIMEOUT, ENV_TIMEOUT_LEGACY, default=60, low=1, high=3600),
            graceful_timeout=_int(env, ENV_GRACEFUL, default=20, low=1, high=28),
            keepalive=_int(env, ENV_KEEPALIVE, default=5, low=0, high=300),
            default_accept=env.get(ENV_DEFAULT_ACCEPT, "").strip(),
            max_request_bytes=_int(
                env, ENV_MAX_BODY, default=default_body, low=1024, high=100 * 1024 * 1024
            ),
            max_payload_mb=payload_mb,
            max_records=_int(env, ENV_MAX_RECORDS, default=10_000, low=1, high=10_000_000),
            max_doc_chars=_int(env, ENV_MAX_DOC_CHARS, default=100_000, low=1, high=10**8),
            top_k=_int(env, ENV_TOP_K, default=3, low=1, high=1000),
            num_topics=num_topics or None,
            batch=_bool(env, ENV_BATCH, False),
            log_level=log_level,
            knn_metric=_choice(env, ENV_KNN_METRIC, "L2", KNN_METRICS),
            knn_distance=_choice(env, ENV_KNN_DISTANCE, "euclidean", KNN_DISTANCES),
            recommendations=_int(env, ENV_RECOMMENDATIONS, default=10, low=1, high=1000),
        )

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values.update(changes)
        if values["stage"] not in STAGES:
            raise SettingsError(f"stage {values['stage']!r}; expected one of {', '.join(STAGES)}")
        return Settings(**values)
