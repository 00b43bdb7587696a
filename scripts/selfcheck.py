"""Deploy-time self-check of the recommender (``endpoints.py create-pipeline`` / ``update``).

The probes are a few catalog documents' own text (``selfcheck.jsonl`` in our model.tar.gz,
written by ``serving.train``): sent to the endpoint, each must come back with itself first.
What a failure means:

- ``recommend`` answers 422 "k-NN output without labels/distances": k-NN answered without
  ``verbose=true``, so the built-in ignored ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (UNCONFIRMED
  for the closed k-NN image; contract §9);
- the document is not first (often: last): the order ``recommend`` applies is not k-NN's, i.e.
  ``SERVING_KNN_METRIC`` does not match the k-NN training job's ``index_metric``, or k-NN was not
  trained on this pipeline's unit topic vectors;
- a "value outside" 422, or the first score not ~1: the scores' formula does not fit k-NN's
  numbers (e.g. squared vs plain Euclidean distances);
- with the k-NN training CSV at hand (the k-NN job's ``train`` channel), the other scores are
  compared with the cosine similarities of the training vectors: a mismatch that the other L2
  reading explains names ``SERVING_KNN_DISTANCE=squared`` (or ``euclidean``).
"""

from __future__ import annotations

import io
import json
import tarfile
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from scripts.aws_common import Aws, log, parse_s3_uri
from scripts.sm_resources import (
    delete_config_and_models,
    deploy,
    describe_or_none,
    models_of,
    wait_in_service,
)

PROBES = "selfcheck.jsonl"
CATALOG = "catalog.jsonl"
SCORE_TOLERANCE = 0.02


@dataclass
class Result:
    ok: bool
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def message(self) -> str:
        return "; ".join(self.problems)


def model_files(aws: Aws, model_data: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The named members of our model.tar.gz on S3."""
    bucket, key = parse_s3_uri(model_data)
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if name in names and member.isfile():
                handle = tar.extractfile(member)
                found[name] = handle.read() if handle else b""
    return found


def training_vectors(aws: Aws, csv_prefix: str | None) -> np.ndarray | None:
    """The k-NN training CSV (label, u1..uK) as unit vectors indexed by label, if readable."""
    if not csv_prefix:
        return None
    bucket, prefix = parse_s3_uri(csv_prefix)
    s3 = aws.client("s3")
    rows: dict[int, list[float]] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                text = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
                for line in text.splitlines():
                    if line.strip():
                        label, *values = line.split(",")
                        rows[int(float(label))] = [float(v) for v in values]
    except (ClientError, ValueError) as exc:
        log(f"self-check: k-NN training data {csv_prefix} not readable ({exc}); scores are "
            "checked against 1.0 for the document itself only")
        return None
    if not rows:
        return None
    out = np.zeros((max(rows) + 1, len(next(iter(rows.values())))), dtype=np.float64)
    for label, values in rows.items():
        out[label] = values
    return out


def _explain(status: int, message: str) -> str:
    if status == 422 and "verbose" in message:
        return ("k-NN answered without labels and distances: the built-in k-NN ignored "
                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='application/json; verbose=true'. Try "
                "--stage-accept knn='application/jsonlines; verbose=true'; if no type works, "
                "the pipeline cannot use the built-in k-NN: deploy it as its own endpoint and "
                "call it with Accept '...; verbose=true' from the client")
    if status == 422 and "outside" in message:
        return (f"recommend refused k-NN's values ({message[:300]}): SERVING_KNN_METRIC / "
                "SERVING_KNN_DISTANCE do not match the k-NN model, or k-NN was not trained on "
                "this pipeline's unit topic vectors (scripts/knn_data.py)")
    return f"the endpoint answered {status}: {message[:300]}"


def _alternative(distance: str, score: float) -> float:
    """The score the other L2 reading would have given for the same k-NN value."""
    if distance == "euclidean":  # reported 1 - d^2/2 with d = k-NN's value
        value = np.sqrt(max(0.0, 2.0 * (1.0 - score)))
        return 1.0 - value / 2.0
    value = 2.0 * (1.0 - score)  # reported 1 - v/2 with v = k-NN's value
    return 1.0 - value * value / 2.0


def check(aws: Aws, endpoint: str, model_data: str, metric: str, distance: str,
          knn_train: str | None = None, probes: int = 3) -> Result:
    """Invoke ``endpoint`` with up to ``probes`` catalog documents; see the module docstring."""
    try:
        files = model_files(aws, model_data, (PROBES, CATALOG))
    except (ClientError, tarfile.TarError, OSError) as exc:
        return Result(False, [f"cannot read the probes from {model_data} ({exc}); "
                              "--no-verify deploys without this check"])
    if PROBES not in files or CATALOG not in files:
        return Result(False, [f"{model_data} has no {PROBES}/{CATALOG}: retrain with this "
                              "version of serving.train, or deploy with --no-verify"])
    docs = [json.loads(line) for line in files[PROBES].splitlines() if line.strip()][:probes]
    index_of = {json.loads(line)["id"]: json.loads(line)["index"]
                for line in files[CATALOG].splitlines() if line.strip()}
    vectors = training_vectors(aws, knn_train) if metric == "L2" else None
    runtime = aws.client("sagemaker-runtime")
    result = Result(True)
    misplaced: list[str] = []
    for doc in docs:
        body = json.dumps({"instances": [doc["text"]]}).encode()
        try:
            answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=body,
                                             ContentType="application/json",
                                             Accept="application/json")
        except ClientError as exc:
            error = exc.response
            status = int(error.get("OriginalStatusCode") or
                         error.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = str(error.get("OriginalMessage") or error.get("Error", {}).get("Message"))
            result.problems.append(f"document {doc['id']}: {_explain(status, message)}")
            break
        result.checked += 1
        recs = json.loads(answer["Body"].read())["predictions"][0]["recommendations"]
        ids = [r["id"] for r in recs]
        if not ids or ids[0] != doc["id"]:
            where = (f"at position {ids.index(doc['id']) + 1} of {len(ids)}"
                     if doc["id"] in ids else f"not among the {len(ids)}")
            misplaced.append(f"document {doc['id']} is {where}")
            continue
        if abs(recs[0]["score"] - 1.0) > SCORE_TOLERANCE:
            result.problems.append(f"document {doc['id']} scores {recs[0]['score']} against "
                                   "itself, not 1: the score formula does not fit k-NN's values")
        if vectors is not None and doc["index"] < len(vectors):
            _compare_scores(result, doc, recs, index_of, vectors, distance)
    if misplaced:
        result.problems.insert(0, (
            f"{'; '.join(misplaced)}, not first: recommend orders k-NN's answer as index_metric "
            f"{metric} (SERVING_KNN_METRIC), which is not how this k-NN model answers; set "
            "--knn-metric to the k-NN training job's index_metric (L2 recommended) and check "
            "that k-NN was trained on scripts/knn_data.py's unit vectors"))
    result.ok = not result.problems and result.checked > 0
    if not docs:
        result.problems.append(f"{PROBES} holds no documents")
    return result


def _compare_scores(result: Result, doc: dict[str, Any], recs: list[dict[str, Any]],
                    index_of: dict[str, int], vectors: np.ndarray, distance: str) -> None:
    me = vectors[doc["index"]]
    for rec in recs[1:4]:
        other = index_of.get(rec["id"])
        if other is None or other >= len(vectors):
            continue
        cosine = float(me @ vectors[other])
        if abs(rec["score"] - cosine) <= SCORE_TOLERANCE:
            continue
        other_reading = "squared" if distance == "euclidean" else "euclidean"
        if abs(_alternative(distance, rec["score"]) - cosine) <= SCORE_TOLERANCE:
            hint = (f"k-NN's L2 values are {other_reading} distances: redeploy with "
                    f"--env SERVING_KNN_DISTANCE={other_reading}")
        else:
            hint = "the query's topic vector differs from the training vector of the same text"
        result.problems.append(f"document {doc['id']}: {rec['id']} scores {rec['score']:.4f} "
                               f"but the training vectors' cosine is {cosine:.4f}: {hint}")
        return


def wait_local_runtime(endpoint: str, config: str, timeout: float = 300.0) -> str:
    """Offline only (a no-op against AWS): moto says InService at once, while the local runtime
    (scripts/localsm/runtime.py) keeps serving the old containers of an updated endpoint until
    the new ones answer /ping. Wait until it serves ``config``; returns "" or why it failed."""
    import os
    import time
    import urllib.request

    url = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "")
    if not url.startswith(("http://127.", "http://localhost")):
        return ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/_local/endpoints", timeout=10) as r:
                deps = json.loads(r.read())
        except OSError:
            return ""  # not our runtime: nothing to wait for
        mine = [d for d in deps if d.get("endpoint") == endpoint and d.get("config") == config]
        if any(d.get("state") == "InService" for d in mine):
            return ""
        failed = [d for d in mine if d.get("state") == "Failed"]
        if failed:
            return f"{config} failed to deploy: {str(failed[0].get('reason'))[:500]}"
        time.sleep(1)
    return f"{config} was not serving after {timeout:.0f} s"


def verify_deployment(aws: Aws, endpoint: str, config: str, old_config: str | None,
                      model_data: str, metric: str, distance: str,
                      knn_train: str | None) -> None:
    """Self-check ``endpoint`` on ``config``; on failure roll back to ``old_config`` (when the
    endpoint had one) and raise ScriptError saying what broke and what to do."""
    from scripts.aws_common import ScriptError

    failure = wait_local_runtime(endpoint, config)
    result = (Result(False, [failure]) if failure else
              check(aws, endpoint, model_data, metric, distance, knn_train))
    if result.ok:
        log(f"self-check passed: {result.checked} catalog documents recommend themselves first")
        return
    message = f"self-check of {endpoint} FAILED: {result.message()}"
    if old_config and old_config != config:
        sm = aws.client("sagemaker")
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=old_config)
        aws.note(f"rolling {endpoint} back to {old_config}")
        wait_in_service(aws, endpoint, old_config)
        wait_local_runtime(endpoint, old_config)
        delete_config_and_models(aws, config, keep_models=models_of(aws, old_config))
        message += f". Rolled back to {old_config}"
    else:
        message += (f". The endpoint stays up for inspection (endpoints.py delete --name "
                    f"{endpoint}); --no-verify deploys without this check")
    raise ScriptError(message, 1)


def train_channel(desc: dict[str, Any]) -> str | None:
    for channel in desc.get("InputDataConfig", []):
        if channel.get("ChannelName") == "train":
            return str(channel["DataSource"]["S3DataSource"]["S3Uri"])
    return None


def deploy_checked(aws: Aws, args: Namespace, name: str, config: str,
                   check: dict[str, Any] | None) -> str:
    """deploy(); then, unless --no-verify / --no-wait / --dry-run, the self-check with
    roll-back (endpoints.py create-pipeline and update)."""
    verify = check is not None and not args.no_wait and not args.no_verify and not aws.dry_run
    old = None
    if verify:  # the config to roll back to
        desc = describe_or_none(aws.client("sagemaker").describe_endpoint, EndpointName=name)
        old = desc.get("EndpointConfigName") if desc else None
    result = deploy(aws, name, config, wait=not args.no_wait, keep_old=args.keep_old or verify)
    if verify and check is not None:
        verify_deployment(aws, name, config, old, **check)
        if old and old != config and not args.keep_old:
            delete_config_and_models(aws, old, keep_models=models_of(aws, config))
    return result
