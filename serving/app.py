"""The HTTP layer: SageMaker's ``/ping``, ``/invocations`` and ``/execution-parameters``.

One code path for every stage: limits → content negotiation → decode → model → encode, with
typed 4xx errors as JSON and a request-id-only 500.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import TYPE_CHECKING

# lean_scipy first: whenever a stage imports scipy, scipy's copy of numpy's namespace comes
# without numpy's unused submodules (a classify server imports no scipy).
from serving import lean_scipy, logs  # noqa: F401
from serving.artifact import Model
from serving.config import ENV_MAX_RESPONSE, Settings, SettingsError
from serving.errors import (
    BadRequest,
    ModelLoadError,
    PayloadTooLarge,
    ServingError,
    UnsupportedMediaType,
)
from serving.hot_routes import (  # noqa: F401 (serving.app's names before the split)
    TRANSFORM_BUDGET_MB,
    HotRoutes,
    execution_parameters,
)
from serving.mediatypes import (
    JSON,
    JSONLINES,
    RECORDIO,
    MediaType,
    content_type_for,
    negotiate,
    parse_content_type,
)
from serving.options import Options
from serving.stages import Stage, build

if TYPE_CHECKING:
    from flask import Flask

access_log = logging.getLogger(logs.ACCESS)
log = logging.getLogger("serving.app")
# The list every stage's application/json answer wraps its records in (its JSON Lines answer is
# one list item per line); used to frame batch answers one record per line.
JSON_LIST_KEYS = {"classify": "predictions", "recommend": "predictions",
                  "ntm-features": "instances", "topics-to-knn": "instances"}


# Clients send the same few header values over and over: parse each distinct one once.
# (Errors are exceptions, which lru_cache does not cache, so they are raised every time.)
_content_type = lru_cache(maxsize=256)(parse_content_type)
_negotiate = lru_cache(maxsize=256)(negotiate)
_content_type_for = lru_cache(maxsize=64)(content_type_for)


def frame_batch(parts: list[bytes], media: MediaType, json_key: str) -> bytes:
    """Batch-transform framing: exactly one line per record, in order, and no final newline.

    With ``SplitType=Line`` and ``AssembleWith=Line`` SageMaker appends a newline after each
    response ("Line: add a newline character at the end of every transformed record", API
    TransformOutput.AssembleWith; https://docs.aws.amazon.com/sagemaker/latest/dg/
    batch-transform.html), so a response ending with one would add a blank line per mini-batch.
    ``parts`` are the stage's JSON Lines / CSV answers for consecutive chunks (each record a
    line ending in a newline); application/json is framed as one ``{json_key: [record]}`` document
    per line (what a one-record request answers); RecordIO is binary and self-delimiting.
    """
    body = b"".join(parts)
    if media.type == RECORDIO:
        return body
    if body.endswith(b"\n"):
        body = body[:-1]
    if media.type == JSON:  # orjson never writes a raw newline, so lines are records
        prefix = b'{"' + json_key.encode() + b'":['
        body = prefix + body.replace(b"\n", b"]}\n" + prefix) + b"]}"
    return body


class Server:
    """The loaded model, its stage and settings; ``ready`` once the warm-up has passed."""

    def __init__(self, model: Model | None, settings: Settings, stage: Stage | None = None,
                 ) -> None:
        """``stage`` defaults to the serving stage ``settings`` names, built from ``model``; the
        NTM/k-NN stand-ins pass their own (standins/server.py) and no model."""
        self.model = model
        self.settings = settings
        if stage is None:
            assert model is not None, "a serving stage needs the model"
            stage = build(model, settings)
        self.stage: Stage = stage
        self.default_accept = settings.default_accept or self.stage.natural_output
        try:  # a default this stage cannot write is a deployment error: fail at start-up
            negotiate(None, self.stage.output_types, self.default_accept)
        except ServingError as exc:
            raise SettingsError(
                f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r} is not a "
                f"type stage {self.stage.name} writes ({', '.join(self.stage.output_types)})"
            ) from exc
        self.ready = False

    def warm_up(self) -> None:
        """Run the stage's canned request end to end; raises if anything is wrong."""
        body, content_type, accept = self.stage.warmup
        out, _media, count = self.invoke(body, content_type, accept, None)
        if not out or count < 1:
            raise RuntimeError(f"warm-up of stage {self.stage.name} produced no output")
        self.ready = True

    def invoke(self, body: bytes, content_type: str | None, accept: str | None,
               attributes: str | None, timings: dict[str, float] | None = None,
               ) -> tuple[bytes, str, int]:
        stage = self.stage
        t0 = time.perf_counter()
        media: MediaType = _content_type(content_type)
        if media.type not in stage.input_types:
            raise UnsupportedMediaType(
                f"Content-Type {media.type} is not read by stage {stage.name}; use one of "
                f"{', '.join(stage.input_types)}")
        out_media = _negotiate(accept, stage.output_types, self.default_accept)
        options = Options.parse(attributes)
        options.check(stage.name, out_media)
        if not body:
            raise BadRequest("the request body is empty")
        if "charset" in media.params and media.params["charset"].strip().lower() == "us-ascii" \
                and not body.isascii():  # UTF-8 would read it, but it is not what it says
            raise BadRequest("the body is labelled charset=us-ascii but holds bytes over 127; "
                             "label it charset=utf-8")
        records = stage.decode(body, media)
        count = stage.count(records)
        if not count:  # e.g. {"predictions": []}: nothing for the next container either
            raise BadRequest("the request holds no records")
        t1 = time.perf_counter()
        if self.settings.batch:
            out, model_s = self._batch(records, options, out_media)
        else:
            result = stage.run(records, options)
            model_s = time.perf_counter() - t1
            out = stage.encode(result, out_media)
        if len(out) > self.settings.max_response_bytes:  # the stages refuse most cases earlier
            raise PayloadTooLarge(
                f"the answer is {len(out)} bytes, over the response limit of "
                f"{self.settings.max_response_bytes} bytes; send fewer records per request")
        if timings is not None:
            timings.update(decode_ms=round((t1 - t0) * 1e3, 3),
                           model_ms=round(model_s * 1e3, 3),
                           encode_ms=round((time.perf_counter() - t1 - model_s) * 1e3, 3))
        return out, _content_type_for(out_media), count

    def _batch(self, records: object, options: Options, out_media: MediaType,
               ) -> tuple[bytes, float]:
        """Batch mode: the model over ``batch_chunk_records`` records at a time (bounded memory
        for a MultiRecord request of many short lines), answers framed one line per record."""
        stage, step = self.stage, self.settings.batch_chunk_records
        limit = self.settings.max_response_bytes
        part_media = MediaType(JSONLINES, out_media.params) if out_media.type == JSON else out_media
        parts, model_s, size, count = [], 0.0, 0, stage.count(records)
        for start in range(0, count, step):
            t = time.perf_counter()
            result = stage.run(records[start:start + step], options)  # type: ignore[index]
            model_s += time.perf_counter() - t
            parts.append(stage.encode(result, part_media))
            size += len(parts[-1])
            if size > limit:  # each chunk's own estimate saw only its records: stop here
                raise PayloadTooLarge(
                    f"the answer is over the response limit of {limit} bytes after "
                    f"{min(start + step, count)} of the {count} records; accept text/csv, send "
                    f"fewer records per request (MaxPayloadInMB) or raise {ENV_MAX_RESPONSE}")
        return frame_batch(parts, out_media, JSON_LIST_KEYS[stage.name]), model_s


def _flask_app(hot: HotRoutes) -> Flask:
    from serving import flask_app  # Flask: imported here, when first needed

    return flask_app.create_app(hot)


def create_app(server: Server) -> Flask:
    """The Flask app of ``server`` (serving/flask_app.py), its hot routes in front."""
    return _flask_app(HotRoutes(None, server))


def create_wsgi(server: Server) -> HotRoutes:
    """What the workers serve: the hot routes, with the Flask app behind them made by the first
    request they do not answer (a path or method SageMaker never sends), so a server starts
    without importing Flask (~65 ms of a container's ~0.55 s cold start here)."""
    return HotRoutes(None, server, _flask_app)


def load_server(settings: Settings) -> Server:
    try:
        server = Server(Model.load(settings.model_dir), settings)
        server.warm_up()
    except LookupError as exc:  # NLTK data the stage needs (WordNet) is not installed
        raise ModelLoadError(str(exc)) from None
    return server
