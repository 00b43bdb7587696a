"""One batch transform job, run locally as SageMaker runs it (transform_runner.py calls it).

Sources: DG your-algorithms-batch-code (https://docs.aws.amazon.com/sagemaker/latest/dg/
your-algorithms-batch-code.html), the CreateTransformJob API reference and botocore's sagemaker
model (TransformInput, TransformOutput, ModelClientConfig), DG batch-transform-errors.

1. The model's container(s) start as for an endpoint (scripts/localsm/deploy.py) with ``docker run
   IMAGE serve``, the model's and the job's ``Environment``, ``SAGEMAKER_BATCH=true``, and
   ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` / ``SAGEMAKER_BATCH_STRATEGY`` (``SINGLE_RECORD`` |
   ``MULTI_RECORD``) / ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` only when the job request sets them
   ("If the user doesn't set values for them, they aren't passed").
2. Limits: the request's values, else what ``GET /execution-parameters`` of the (first) container
   answers, else the defaults (MaxConcurrentTransforms 1, MaxPayloadInMB 6, BatchStrategy
   MultiRecord: the last one is the SageMaker Python SDK's local-mode default, AWS's is
   UNCONFIRMED). Effective values breaking ``MaxConcurrentTransforms * MaxPayloadInMB <= 100`` fail
   the job (what AWS does then is UNCONFIRMED; the create call already refuses explicit ones).
3. Input: every object under the ``S3Prefix`` (or listed by the ``ManifestFile``), ``Gzip``
   decompressed, cut into mini-batches (scripts/localsm/batch_split.py), sent as ``POST
   /invocations`` with the job's ``ContentType`` and ``Accept`` (a pipeline: Content-Type to the
   first container, each response and its type to the next, Accept to the last), at most
   ``MaxConcurrentTransforms`` at a time. A failed request (non-2xx, timeout, no answer) is tried
   again up to ``ModelClientConfig.InvocationsMaxRetries`` times (default 3), each with
   ``InvocationsTimeoutInSeconds`` (default 600); our retries follow at once (AWS's back-off is
   UNCONFIRMED). The HTTP side: scripts/localsm/transform_http.py.
4. Output: the responses of an object in input order, each followed by ``\\n`` with
   ``AssembleWith=Line`` ("To add a newline character at the end of every transformed record,
   specify Line") and nothing with ``None``; nothing is stripped or added otherwise, so a
   container whose response already ends with a newline shows a blank line per request, as on
   AWS. Written to ``<S3OutputPath>/<key relative to the input prefix's folder>.out`` once the
   whole object succeeded ("it creates an .out file only if the transform job succeeds on the
   entire file"); the other objects still run, then the job fails with the first failure.
5. ``FailureReason``: AWS gives ``ClientError: See job logs for more information`` and puts the
   container's status and message in the job's log; we give that sentence followed by the same
   log line (object, status, the container's message), so the reason is visible offline. The
   log is kept at ``runtime-logs/transform-<job>/data-log.txt`` with each container's log.
6. Not emulated: ``DataProcessing`` filters and joins (such a job fails, saying so); several
   instances (``InstanceCount`` runs as one).
"""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Event, Lock
from typing import Any

from scripts.localsm.batch_split import SplitError, mini_batches
from scripts.localsm.deploy import Deployer, DeployError, Deployment, say
from scripts.localsm.moto_transform import payload_rule_violation
from scripts.localsm.transform_http import CallFailed, chain, execution_parameters

STRATEGY_ENV = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
DEFAULTS = {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 6, "BatchStrategy": "MultiRecord"}
STARTUP_TIMEOUT = 600.0
AWS_REASON = "ClientError: See job logs for more information"


class JobFailed(Exception):
    """The job ends Failed with this FailureReason."""


class JobStopped(Exception):
    pass


def s3_split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class TransformJob:
    """Runs one job; ``run`` returns (status, FailureReason)."""

    def __init__(self, deployer: Deployer, desc: dict[str, Any], stop: Event) -> None:
        self.deployer, self.desc, self.stop = deployer, desc, stop
        self.name = str(desc["TransformJobName"])
        self.dep = Deployment(f"transform-{self.name}", self.name, "transform", desc["ModelName"])
        self.log_path = deployer.work / "runtime-logs" / self.dep.endpoint / "data-log.txt"
        client = desc.get("ModelClientConfig") or {}
        self.retries = int(client.get("InvocationsMaxRetries", 3))
        self.timeout = float(client.get("InvocationsTimeoutInSeconds", 600))
        self.requests = self.in_flight = self.peak = 0
        self.counter = Lock()

    def log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self.log_path.open("a") as out:
            out.write(f"{stamp}:[sagemaker logs]: {line}\n")

    def run(self) -> tuple[str, str]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self.refuse_unsupported()
            limits = self.start_containers()
            self.transform_all(limits)
            status, reason = "Completed", ""
        except JobStopped:
            status, reason = "Stopped", ""
        except JobFailed as exc:
            status, reason = "Failed", str(exc)
        except Exception as exc:  # a bug of ours or of Docker: still end the job
            status, reason = "Failed", f"InternalServerError: local runtime: {exc!r}"
        finally:
            self.deployer.teardown(self.dep)
        seconds = time.monotonic() - started
        done = f"{status} in {seconds:.1f} s: {self.requests} requests, at most {self.peak} at once"
        say(f"transform job {self.name}: {done}")
        self.log(done)
        if reason:
            self.log(reason)
        return status, reason[:1024]

    def refuse_unsupported(self) -> None:
        """DataProcessing filters and joins are not emulated: say so rather than ignore them."""
        given = self.desc.get("DataProcessing") or {}
        defaults = {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}
        used = [k for k, v in given.items() if k in defaults and v not in (defaults[k], "")]
        if used:
            raise JobFailed(
                f"ClientError: the local runtime does not implement DataProcessing "
                f"{', '.join(sorted(used))} (only the defaults: $, $, None)"
            )

    # -- containers and limits ---------------------------------------------------------------
    def start_containers(self) -> dict[str, Any]:
        sm = self.deployer.aws("sagemaker")
        model = sm.describe_model(ModelName=self.desc["ModelName"])
        specs = list(model.get("Containers") or [model["PrimaryContainer"]])
        batch_env = {"SAGEMAKER_BATCH": "true", **(self.desc.get("Environment") or {})}
        if self.desc.get("MaxPayloadInMB") is not None:
            batch_env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.desc["MaxPayloadInMB"])
        if self.desc.get("BatchStrategy"):
            batch_env["SAGEMAKER_BATCH_STRATEGY"] = STRATEGY_ENV[self.desc["BatchStrategy"]]
        if self.desc.get("MaxConcurrentTransforms"):
            batch_env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(
                self.desc["MaxConcurrentTransforms"]
            )
        specs = [{**s, "Environment": {**(s.get("Environment") or {}), **batch_env}} for s in specs]
        try:
            self.deployer.deploy(self.dep, specs, STARTUP_TIMEOUT)
        except DeployError as exc:
            reason = f"AlgorithmError: Model container failed to respond to ping. {exc}"
            raise JobFailed(reason) from None
        return self.limits(self.dep.boxes[0])

    def limits(self, box: Any) -> dict[str, Any]:
        given = {k: v for k, v in self.desc.items() if k in DEFAULTS and v not in (None, "")}
        if given.get("MaxConcurrentTransforms") == 0:  # 0 means unset (API reference)
            del given["MaxConcurrentTransforms"]
        asked = execution_parameters(box) if len(given) < len(DEFAULTS) else {}
        found = {**DEFAULTS, **asked, **given}
        concurrent, payload = found["MaxConcurrentTransforms"], found["MaxPayloadInMB"]
        strategy = STRATEGY_ENV[found["BatchStrategy"]]
        self.log(f"MaxConcurrentTransforms={concurrent}, MaxPayloadInMB={payload}, "
                 f"BatchStrategy={strategy}")  # fmt: skip
        broken = payload_rule_violation(concurrent, payload)
        if broken:
            raise JobFailed(f"ClientError: {broken} (values after /execution-parameters)")
        return found

    # -- data --------------------------------------------------------------------------------
    def inputs(self) -> list[tuple[str, str, str]]:
        """(bucket, key, name relative to the input folder) of every input object."""
        source = self.desc["TransformInput"]["DataSource"]["S3DataSource"]
        kind, uri = source.get("S3DataType", "S3Prefix"), source["S3Uri"]
        s3 = self.deployer.aws("s3")
        bucket, prefix = s3_split(uri)
        if kind == "ManifestFile":
            try:
                doc = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
                base = doc[0]["prefix"]
                keys = [str(k) for k in doc[1:]]
            except Exception as exc:
                raise JobFailed(f"ClientError: cannot read the manifest {uri}: {exc}") from None
            bucket, folder = s3_split(base)
            return [(bucket, folder + k, k) for k in keys]
        if kind != "S3Prefix":
            raise JobFailed(f"ClientError: S3DataType {kind} is not supported for transform jobs")
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        found = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        except Exception as exc:
            raise JobFailed(f"ClientError: cannot list {uri}: {exc}") from None
        if not found:
            raise JobFailed(f"ClientError: no objects under {uri}")
        return [(bucket, key, key[len(folder) :]) for key in sorted(found)]

    def transform_all(self, limits: dict[str, Any]) -> None:
        """Objects side by side (at most MaxConcurrentTransforms of them in memory), their
        mini-batches through one pool: at most MaxConcurrentTransforms requests at once."""
        width = limits["MaxConcurrentTransforms"]
        failures: list[str] = []
        with ThreadPoolExecutor(width) as requests, ThreadPoolExecutor(width) as objects:
            jobs = [
                objects.submit(self.transform_object, requests, limits, *found)
                for found in self.inputs()
            ]
            for job in jobs:
                try:
                    job.result()
                except JobFailed as exc:
                    failures.append(str(exc))
                except JobStopped:
                    for other in jobs:
                        other.cancel()
                    raise
        if failures:
            raise JobFailed(failures[0])  # the first object (in key order) that failed

    def transform_object(
        self, pool: ThreadPoolExecutor, limits: dict[str, Any], bucket: str, key: str, rel: str
    ) -> None:
        if self.stop.is_set():
            raise JobStopped
        s3 = self.deployer.aws("s3")
        where = f"{bucket}/{key}"
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        tin, tout = self.desc["TransformInput"], self.desc["TransformOutput"]
        if tin.get("CompressionType") == "Gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                self.fail(where, f"ClientError: cannot decompress it: {exc}")
        split, payload = tin.get("SplitType", "None"), int(limits["MaxPayloadInMB"])
        try:
            batches = [b for _, b in mini_batches(data, split, limits["BatchStrategy"], payload)]
        except SplitError as exc:
            self.fail(where, f"ClientError: {exc}")
        calls = [
            pool.submit(self.call_with_retries, body, tin.get("ContentType"), tout.get("Accept"),
                        chunked=payload == 0)
            for body in batches
        ]  # fmt: skip
        answers: list[bytes] = []
        for call in calls:
            try:
                answers.append(call.result())
            except CallFailed as exc:
                for other in calls:
                    other.cancel()
                kind = "ClientError" if 400 <= exc.status < 500 else "ServerError"
                self.fail(where, f"{kind}: {exc.status or 'no answer'} from {exc.hostname}. "
                                 f"Message: {exc.message}")  # fmt: skip
            except JobStopped:
                raise
        newline = b"\n" if tout.get("AssembleWith") == "Line" else b""
        out = b"".join(answer + newline for answer in answers)
        if self.stop.is_set():
            raise JobStopped
        out_bucket, out_prefix = s3_split(tout["S3OutputPath"])
        out_key = f"{out_prefix.rstrip('/')}/{rel}.out".lstrip("/")
        try:
            s3.put_object(Bucket=out_bucket, Key=out_key, Body=out)
        except Exception as exc:  # e.g. no such bucket: the job cannot write its output
            self.fail(where, f"ClientError: cannot write s3://{out_bucket}/{out_key}: {exc}")
        self.log(f"{where}: {len(batches)} requests, {len(out)} bytes -> {out_bucket}/{out_key}")

    def fail(self, where: str, what: str) -> None:
        self.log(f"{where}: {what}")
        raise JobFailed(f"{AWS_REASON}. Local runtime: {where}: {what}")

    # -- requests ----------------------------------------------------------------------------
    def call_with_retries(
        self, body: bytes, content_type: str | None, accept: str | None, chunked: bool
    ) -> bytes:
        failure = CallFailed(0, "not sent", "")
        for attempt in range(1 + self.retries):
            if self.stop.is_set():
                raise JobStopped
            with self.counter:
                self.requests += 1
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                return chain(self.dep.boxes, body, content_type, accept, self.timeout, chunked)
            except CallFailed as exc:
                failure = exc
                self.log(f"attempt {attempt + 1}: {exc.status or 'no answer'} from "
                         f"{exc.hostname}: {exc.message[:300]}")  # fmt: skip
            finally:
                with self.counter:
                    self.in_flight -= 1
        raise failure


def data_log(work: Path, job: str) -> Path:
    return work / "runtime-logs" / f"transform-{job}" / "data-log.txt"
