"""Every environment variable the server reads, with its default, in one typed object.

The object is built once at start-up (``Settings.from_env()``) and passed down; nothing else in
the package reads ``os.environ`` for serving behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sagemaker_inference import parameters

STAGES = ("classify", "ntm-features", "topics-to-knn", "recommend")

# Environment variable names (SageMaker's own first, then this project's). SageMaker's names come
# from AWS's inference toolkit (sagemaker_inference.parameters, what its environment.Environment
# reads); its Environment object itself is not used: it reads os.environ only (no mapping to
# test with), raises a bare ValueError on a non-number, checks no range, and turns an unset
# SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT into application/json where each stage has its own default.
ENV_PORT = parameters.BIND_TO_PORT_ENV  # SAGEMAKER_BIND_TO_PORT
ENV_SAFE_PORT_RANGE = parameters.SAFE_PORT_RANGE_ENV  # SAGEMAKER_SAFE_PORT_RANGE
ENV_WORKERS = parameters.MODEL_SERVER_WORKERS_ENV  # SAGEMAKER_MODEL_SERVER_WORKERS
ENV_WORKERS_LEGACY = "MODEL_SERVER_WORKERS"
ENV_TIMEOUT = parameters.MODEL_SERVER_TIMEOUT_ENV  # SAGEMAKER_MODEL_SERVER_TIMEOUT
ENV_TIMEOUT_LEGACY = "MODEL_SERVER_TIMEOUT"
ENV_DEFAULT_ACCEPT = parameters.DEFAULT_INVOCATIONS_ACCEPT_ENV  # ..._DEFAULT_INVOCATIONS_ACCEPT
ENV_MAX_PAYLOAD_MB = parameters.MAX_REQUEST_SIZE  # SAGEMAKER_MAX_PAYLOAD_IN_MB
ENV_BATCH = "SAGEMAKER_BATCH"
ENV_STAGE = "SERVING_STAGE"
ENV_MODEL_DIR = "SM_MODEL_DIR"
ENV_MAX_BODY = "SERVING_MAX_REQUEST_BYTES"
ENV_MAX_RECORDS = "SERVING_MAX_RECORDS"
ENV_BATCH_CHUNK = "SERVING_BATCH_CHUNK_RECORDS"
ENV_MAX_DOC_CHARS = "SERVING_MAX_DOC_CHARS"
ENV_MAX_RESPONSE = "SERVING_MAX_RESPONSE_BYTES"
ENV_MAX_VALUES = "SERVING_MAX_VALUES"
ENV_TOP_K = "SERVING_TOP_K"
ENV_NUM_TOPICS = "SERVING_NUM_TOPICS"
ENV_LOG_LEVEL = "SERVING_LOG_LEVEL"
ENV_GRACEFUL = "SERVING_GRACEFUL_TIMEOUT"
ENV_KEEPALIVE = "SERVING_KEEPALIVE"
ENV_HOST = "SERVING_HOST"
ENV_KNN_METRIC = "SERVING_KNN_METRIC"
ENV_KNN_DISTANCE = "SERVING_KNN_DISTANCE"
ENV_RECOMMENDATIONS = "SERVING_RECOMMENDATIONS"
ENV_FRONT_END = "SERVING_FRONT_END"
ENV_CLIENT_TIMEOUT = "SERVING_CLIENT_TIMEOUT"
ENV_HUGE_PAGES = "SERVING_HUGE_PAGES"  # glibc.malloc.hugetlb=1 for the server (serving.heap)

FRONT_ENDS = ("nginx", "none")
KNN_METRICS = ("L2", "COSINE", "INNER_PRODUCT")
KNN_DISTANCES = ("euclidean", "squared")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The largest SageMaker instances have 192 vCPUs; the default is one worker per CPU, up to this.
MAX_WORKERS = 256
# A batch job's default answer limit, as a multiple of its request limit.
BATCH_RESPONSE_FACTOR = 4
# Allowed range of every integer setting, and the variable that sets it (named in errors).
# ``Settings.__post_init__`` checks these on every construction: ``from_env`` and ``replace``
# (command-line overrides) go through the same validator.
LIMITS: dict[str, tuple[int, int, str]] = {
    "port": (1, 65535, ENV_PORT),
    "workers": (1, MAX_WORKERS, ENV_WORKERS),
    "timeout": (1, 3600, ENV_TIMEOUT),
    "graceful_timeout": (1, 28, ENV_GRACEFUL),
    "keepalive": (0, 300, ENV_KEEPALIVE),
    "client_timeout": (1, 300, ENV_CLIENT_TIMEOUT),
    "max_payload_mb": (1, 100, ENV_MAX_PAYLOAD_MB),  # first: it sets the body limit's default
    "max_request_bytes": (1024, 100 * 1024 * 1024, ENV_MAX_BODY),
    "max_records": (1, 100 * 1024 * 1024, ENV_MAX_RECORDS),
    "batch_chunk_records": (1, 10_000_000, ENV_BATCH_CHUNK),
    "max_doc_chars": (1, 10**9, ENV_MAX_DOC_CHARS),
    "max_response_bytes": (1024, 1024 * 1024 * 1024, ENV_MAX_RESPONSE),
    "max_values": (1024, 1 << 31, ENV_MAX_VALUES),
    "top_k": (1, 1000, ENV_TOP_K),
    "recommendations": (1, 1000, ENV_RECOMMENDATIONS),
}


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


def _int(env: Mapping[str, str], *names: str, default: int) -> int:
    """The first of ``names`` that is set, as an int (its range is checked by ``Settings``)."""
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a whole number") from None
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
    """Server settings. Build with :meth:`from_env`; override fields with :meth:`replace`.

    Every construction is validated (``__post_init__``), so an override from the command line
    meets the same checks as the environment variable it replaces."""

    stage: str = "classify"
    model_dir: str = "/opt/ml/model"
    host: str = "127.0.0.1"  # the image sets SERVING_HOST=0.0.0.0
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
    batch_chunk_records: int = 10_000
    max_doc_chars: int = 6 * 1024 * 1024
    max_response_bytes: int = 6 * 1024 * 1024
    max_values: int = 1 << 22
    top_k: int = 3
    num_topics: int | None = None
    batch: bool = False
    log_level: str = "INFO"
    knn_metric: str = "L2"
    knn_distance: str = "euclidean"
    recommendations: int = 10
    front_end: str = "nginx"
    huge_pages: bool = True
    client_timeout: int = 10

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise SettingsError(f"{ENV_STAGE}={self.stage!r}; expected one of {', '.join(STAGES)}")
        if self.front_end not in FRONT_ENDS:
            raise SettingsError(
                f"{ENV_FRONT_END}={self.front_end!r}; expected one of {', '.join(FRONT_ENDS)}")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"{ENV_LOG_LEVEL}={self.log_level!r} is not a logging level")
        for name, (low, high, env_name) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"{name} ({env_name}) must be a whole number, not {value!r}")
            if not low <= value <= high:
                raise SettingsError(f"{name} ({env_name}) = {value} is outside {low}..{high}")
        if self.batch and self.max_request_bytes < self.max_payload_mb * 1024 * 1024:
            raise SettingsError(
                f"{ENV_MAX_BODY}={self.max_request_bytes} is below {ENV_MAX_PAYLOAD_MB}="
                f"{self.max_payload_mb} MB, what /execution-parameters tells batch transform it "
                "may send: lower the payload or raise the body limit")
        if self.num_topics is not None and not 1 <= self.num_topics <= 10_000:
            raise SettingsError(f"{ENV_NUM_TOPICS}={self.num_topics} is outside 1..10000")
        if self.knn_metric not in KNN_METRICS:
            raise SettingsError(
                f"{ENV_KNN_METRIC}={self.knn_metric!r}; expected one of {', '.join(KNN_METRICS)}")
        if self.knn_distance not in KNN_DISTANCES:
            raise SettingsError(f"{ENV_KNN_DISTANCE}={self.knn_distance!r}; expected one of "
                                f"{', '.join(KNN_DISTANCES)}")
        if not self.host:
            raise SettingsError(f"{ENV_HOST} is empty")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        payload_mb = _int(env, ENV_MAX_PAYLOAD_MB, default=6)
        # A batch job sends up to MaxPayloadInMB per request; a real-time endpoint 6 MB.
        default_body = max(6 * 1024 * 1024, payload_mb * 1024 * 1024)
        max_body = _int(env, ENV_MAX_BODY, default=default_body)
        batch = _bool(env, ENV_BATCH, False)
        # Batch transform packs as many records as fit in MaxPayloadInMB into one request
        # (MultiRecord), so there the body limit bounds the work: a record is at least one byte
        # (its newline), and the model runs over batch_chunk_records records at a time.
        # Real-time requests keep SERVING_MAX_RECORDS.
        default_records = max_body if batch else 10_000
        return cls(
            stage=env.get(ENV_STAGE, "").strip() or "classify",
            model_dir=env.get(ENV_MODEL_DIR, "").strip() or "/opt/ml/model",
            host=env.get(ENV_HOST, "").strip() or "127.0.0.1",
            port=_int(env, ENV_PORT, default=8080),
            safe_port_range=_port_range(env.get(ENV_SAFE_PORT_RANGE, "")),
            workers=_int(env, ENV_WORKERS, ENV_WORKERS_LEGACY,
                         default=min(os.cpu_count() or 1, MAX_WORKERS)),
            timeout=_int(env, ENV_TIMEOUT, ENV_TIMEOUT_LEGACY, default=60),
            graceful_timeout=_int(env, ENV_GRACEFUL, default=20),
            keepalive=_int(env, ENV_KEEPALIVE, default=5),
            default_accept=env.get(ENV_DEFAULT_ACCEPT, "").strip(),
            max_request_bytes=max_body,
            max_payload_mb=payload_mb,
            max_records=_int(env, ENV_MAX_RECORDS, default=default_records),
            batch_chunk_records=_int(env, ENV_BATCH_CHUNK, default=10_000),
            # A document may be as long as the body (the 20news test split holds a
            # 160,616-character post).
            max_doc_chars=_int(env, ENV_MAX_DOC_CHARS, default=max_body),
            # SageMaker's real-time response limit is 6 MB. A batch job's answer may be a few
            # times its request (~230 bytes of JSON Lines a record: 55,000 lines of ~110
            # characters in 6 MB answer 12.5 MB); more is refused as soon as it is reached.
            max_response_bytes=_int(env, ENV_MAX_RESPONSE, default=max(6 * 1024 * 1024, max_body)
                                    * (BATCH_RESPONSE_FACTOR if batch else 1)),
            # Numbers a request may expand to (sparse rows made dense): 16 MB as float32,
            # more than any 6 MB body holds densely (2 bytes a number at best).
            max_values=_int(env, ENV_MAX_VALUES, default=max(1 << 22, max_body // 2)),
            top_k=_int(env, ENV_TOP_K, default=3),
            num_topics=(_int(env, ENV_NUM_TOPICS, default=0)  # an explicit 0 is refused
                        if env.get(ENV_NUM_TOPICS, "").strip() else None),
            batch=batch,
            log_level=env.get(ENV_LOG_LEVEL, "").strip().upper() or "INFO",
            front_end=env.get(ENV_FRONT_END, "").strip().lower() or "nginx",
            client_timeout=_int(env, ENV_CLIENT_TIMEOUT, default=10),
            knn_metric=env.get(ENV_KNN_METRIC, "").strip().upper() or "L2",
            knn_distance=env.get(ENV_KNN_DISTANCE, "").strip().lower() or "euclidean",
            recommendations=_int(env, ENV_RECOMMENDATIONS, default=10),
            huge_pages=_bool(env, ENV_HUGE_PAGES, True),
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, validated like :meth:`from_env`."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **changes)
