"""SageMaker models, endpoint configs and endpoints, converged idempotently.

Model and endpoint-config names are ``<endpoint>-<8 hex of their definition>``: running the same
create twice finds both and changes nothing; a changed definition makes new ones, and the
endpoint moves to them through ``update_endpoint`` (a new config, never an edit in place), after
which the old config and model are deleted unless asked to keep them.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from scripts.autoscaling import restore_scaling, suspend_scaling
from scripts.aws_common import (
    Aws,
    ScriptError,
    is_not_found,
    log,
    short_hash,
)
from scripts.aws_waits import wait_for, wait_gone

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


def stamp() -> str:
    """The <timestamp> of default job names: <prefix>-<timestamp>."""
    return time.strftime("%Y%m%d-%H%M%S")


def check_name(name: str, what: str = "endpoint", max_len: int = 54) -> str:
    if not NAME_RE.match(name) or len(name) > max_len:
        raise ScriptError(
            f"bad {what} name {name!r}: letters, digits and single hyphens, at most {max_len}", 2
        )
    return name


def describe_or_none(call: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any] | None:
    try:
        return call(**params)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def start_transform_job(aws: Aws, request: dict[str, Any]) -> str:
    """Start the transform job ``request`` names, unless it exists (it is then waited for,
    not started again); its name."""
    sm = aws.client("sagemaker")
    job = str(request["TransformJobName"])
    if describe_or_none(sm.describe_transform_job, TransformJobName=job):
        log(f"transform job {job} exists: not starting it again")
    else:
        sm.create_transform_job(**request)
        aws.note(f"started transform job {job}")
    return job


def wait_transform_job(aws: Aws, job: str) -> None:
    """Wait with progress until the job is Completed; its FailureReason otherwise."""
    sm = aws.client("sagemaker")
    wait_for(
        aws,
        f"transform job {job}",
        lambda: sm.describe_transform_job(TransformJobName=job),
        status_key="TransformJobStatus",
        done=["Completed"],
        failed=["Failed", "Stopped"],
        poll=5,  # a few calls a minute; a local job is seconds long
    )


def model_definition(
    role: str, containers: list[dict[str, Any]], mode: str | None
) -> dict[str, Any]:
    """CreateModel parameters (less the name): one container as PrimaryContainer, else Containers
    with InferenceExecutionConfig."""
    params: dict[str, Any] = {"ExecutionRoleArn": role}
    if len(containers) == 1 and mode is None:
        params["PrimaryContainer"] = containers[0]
    else:
        params["Containers"] = containers
        params["InferenceExecutionConfig"] = {"Mode": mode or "Serial"}
    return params


def ensure_model(aws: Aws, base: str, definition: dict[str, Any]) -> str:
    name = f"{base}-{short_hash(definition)}"
    sm = aws.client("sagemaker")
    if describe_or_none(sm.describe_model, ModelName=name):
        aws.note(f"model {name} exists (same definition)")
    else:
        sm.create_model(ModelName=name, **definition)
        aws.note(f"created model {name}")
    return name


def variant(model: str, instance_type: str, count: int, name: str = "AllTraffic") -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InstanceType": instance_type,
        "InitialInstanceCount": count,
        "InitialVariantWeight": 1.0,
    }


def ensure_endpoint_config(
    aws: Aws, base: str, variants: list[dict[str, Any]], capture: dict[str, Any] | None = None
) -> str:
    """The config of these variants (and DataCaptureConfig ``capture``), created if new. Without
    capture the name hashes the variants alone, as before capture existed: same names."""
    extra = {"DataCaptureConfig": capture} if capture else {}
    name = f"{base}-{short_hash({'ProductionVariants': variants, **extra} if extra else variants)}"
    sm = aws.client("sagemaker")
    if describe_or_none(sm.describe_endpoint_config, EndpointConfigName=name):
        aws.note(f"endpoint config {name} exists (same definition)")
    else:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, **extra)
        aws.note(f"created endpoint config {name}")
    return name


def wait_in_service(aws: Aws, endpoint: str, config: str) -> None:
    sm = aws.client("sagemaker")
    desc = wait_for(
        aws,
        f"endpoint {endpoint}",
        lambda: sm.describe_endpoint(EndpointName=endpoint),
        status_key="EndpointStatus",
        done=["InService"],
        failed=["Failed", "OutOfService"],
    )
    if desc and desc.get("EndpointConfigName") != config:
        reason = desc.get("FailureReason") or "no FailureReason given"
        raise ScriptError(f"update of {endpoint} was rolled back: {reason}")


def deploy(aws: Aws, endpoint: str, config: str, wait: bool, keep_old: bool = False) -> str:
    """Create the endpoint or move it to config; returns created, updated or unchanged.

    Scaling policies on the endpoint are removed for the update and put back once it is
    InService again (SageMaker refuses some updates of endpoints registered for scaling).
    """
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_endpoint, EndpointName=endpoint)
    old: str | None = None
    saved: list[dict[str, Any]] = []
    if desc is None:
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        aws.note(f"creating endpoint {endpoint}")
        result = "created"
    elif desc["EndpointConfigName"] == config:
        aws.note(f"endpoint {endpoint} already uses {config}")
        result = "unchanged"
    else:
        status = desc.get("EndpointStatus")
        if status in BUSY:
            raise ScriptError(f"endpoint {endpoint} is {status}: wait until it settles, then retry")
        if status == "Failed":
            reason = desc.get("FailureReason")
            raise ScriptError(f"endpoint {endpoint} is Failed ({reason}): delete it first")
        old = desc["EndpointConfigName"]
        saved = suspend_scaling(aws, endpoint, desc)
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        aws.note(f"updating endpoint {endpoint}: {old} -> {config}")
        result = "updated"
    if wait or saved:
        wait_in_service(aws, endpoint, config)
    restore_scaling(aws, saved)
    if old and wait and not keep_old:
        delete_config_and_models(aws, old, keep_models=models_of(aws, config))
    return result


def models_of(aws: Aws, config: str) -> set[str]:
    desc = describe_or_none(
        aws.client("sagemaker").describe_endpoint_config, EndpointConfigName=config
    )
    return {v["ModelName"] for v in (desc or {}).get("ProductionVariants", [])}


def delete_config_and_models(aws: Aws, config: str, keep_models: set[str] | None = None) -> None:
    sm = aws.client("sagemaker")
    for model in sorted(models_of(aws, config) - (keep_models or set())):
        if describe_or_none(sm.describe_model, ModelName=model):
            sm.delete_model(ModelName=model)
            aws.note(f"deleted model {model}")
    if describe_or_none(sm.describe_endpoint_config, EndpointConfigName=config):
        sm.delete_endpoint_config(EndpointConfigName=config)
        aws.note(f"deleted endpoint config {config}")


def teardown(aws: Aws, endpoint: str, wait: bool = True) -> bool:
    """Delete the endpoint, its scaling, its config and models, and earlier leftovers of ours."""
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_endpoint, EndpointName=endpoint)
    found = desc is not None
    if desc:
        suspend_scaling(aws, endpoint, desc)
        sm.delete_endpoint(EndpointName=endpoint)
        aws.note(f"deleting endpoint {endpoint}")
        if wait:
            wait_gone(
                aws, f"endpoint {endpoint}", lambda: sm.describe_endpoint(EndpointName=endpoint)
            )
        delete_config_and_models(aws, desc["EndpointConfigName"])
    ours = re.compile(rf"^{re.escape(endpoint)}-[0-9a-f]{{8}}$")
    configs = sm.list_endpoint_configs(NameContains=endpoint, MaxResults=100).get(
        "EndpointConfigs", []
    )
    for item in configs:
        if ours.match(item["EndpointConfigName"]):
            delete_config_and_models(aws, item["EndpointConfigName"])
            found = True
    for item in sm.list_models(NameContains=endpoint, MaxResults=100).get("Models", []):
        if ours.match(item["ModelName"]):
            sm.delete_model(ModelName=item["ModelName"])
            aws.note(f"deleted model {item['ModelName']}")
            found = True
    return found
