"""moto's transform jobs, made to behave like SageMaker's control plane (applied by moto_shims.py).

moto (5.2.1 and 5.2.5 checked) accepts any CreateTransformJob and reports it Completed at once. With
this shim:

- CreateTransformJob is validated as the API reference documents it
  (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html and
  botocore's sagemaker service model): ``MaxPayloadInMB`` at most 100, and when
  ``MaxConcurrentTransforms`` is given, ``MaxConcurrentTransforms * MaxPayloadInMB`` at most 100
  ("If you specify the MaxConcurrentTransforms parameter, the value of (MaxConcurrentTransforms *
  MaxPayloadInMB) also cannot exceed 100 MB"; the payload is the request's, else the documented
  default 6); ``ModelName`` must name an existing model; a name already used is
  ``ResourceInUse``. A refusal is a ``ValidationException`` as SageMaker answers; its wording is
  ours (AWS's exact text is UNCONFIRMED).
- While a runner is attached (the local runtime, scripts/localsm/transform_runner.py), a new job is
  ``InProgress`` until the runner reports ``Completed``, ``Failed`` (with ``FailureReason``) or
  ``Stopped``; without one, moto's old behaviour stays (Completed at once, nothing run).
- StopTransformJob (absent from moto): an ``InProgress`` job becomes ``Stopping``; the runner
  ends it ``Stopped``. Without a runner it is ``Stopped`` at once.

Two private actions, not AWS APIs, for the runner (JSON over moto's SageMaker endpoint,
``X-Amz-Target: SageMaker.<Action>``): ``LocalTransformRunner`` {"Attach": bool} and
``LocalTransformJobUpdate`` {"TransformJobName", "Status", "FailureReason"}.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_PAYLOAD_MB = 6  # CreateTransformJob's documented default for MaxPayloadInMB
PAYLOAD_CAP_MB = 100
RUNNER: dict[str, bool] = {"attached": False}
FINAL = {"Completed", "Failed", "Stopped"}
PRIVATE_ACTIONS = ("LocalTransformRunner", "LocalTransformJobUpdate")


def payload_rule_violation(concurrent: int | None, payload: int | None) -> str | None:
    """The CreateTransformJob limits on MaxPayloadInMB and MaxConcurrentTransforms; None if met."""
    if payload is not None and payload > PAYLOAD_CAP_MB:
        return (
            f"MaxPayloadInMB {payload} is over the maximum of {PAYLOAD_CAP_MB} MB "
            "(CreateTransformJob: 0..100)."
        )
    if concurrent:
        size = DEFAULT_PAYLOAD_MB if payload is None else payload
        if concurrent * size > PAYLOAD_CAP_MB:
            return (
                f"MaxConcurrentTransforms * MaxPayloadInMB must not exceed {PAYLOAD_CAP_MB} MB: "
                f"{concurrent} * {size} = {concurrent * size}."
            )
    return None


def apply() -> None:
    """Wrap moto's SageMaker backend and responses (idempotent)."""
    from moto.core.utils import utcnow
    from moto.sagemaker import exceptions, models, responses

    backend_cls: Any = models.SageMakerModelBackend
    responses_cls: Any = responses.SageMakerResponse
    if hasattr(backend_cls, "stop_transform_job"):
        return
    original_create = backend_cls.create_transform_job

    def create_transform_job(self: Any, **kwargs: Any) -> Any:
        name = kwargs["transform_job_name"]
        if name in self.transform_jobs:
            arn = self.transform_jobs[name].arn
            raise exceptions.ResourceInUseException(
                f"Job name must be unique within an AWS account and region, and a job with this "
                f"name already exists ({arn})"
            )
        if kwargs["model_name"] not in self._models:
            self.describe_model(kwargs["model_name"])  # moto's own "Could not find model" error
        broken = payload_rule_violation(
            kwargs.get("max_concurrent_transforms"), kwargs.get("max_payload_in_mb")
        )
        if broken:
            raise exceptions.ValidationError(broken)
        job = original_create(self, **kwargs)
        if RUNNER["attached"]:
            job.transform_job_status = "InProgress"
            job.transform_end_time = None
        job.failure_reason = None
        return job

    def stop_transform_job(self: Any, transform_job_name: str) -> None:
        job = self.transform_jobs.get(transform_job_name)
        if job is None:
            arn = models.FakeTransformJob.arn_formatter(
                transform_job_name, self.account_id, self.region_name
            )
            raise exceptions.ValidationError(f"Could not find transform job '{arn}'.")
        if job.transform_job_status in FINAL:
            return  # stopping a finished job changes nothing (AWS's answer here: UNCONFIRMED)
        job.transform_job_status = "Stopping" if RUNNER["attached"] else "Stopped"
        job.last_modified_time = utcnow()
        if job.transform_job_status == "Stopped":
            job.transform_end_time = job.last_modified_time

    def stop_transform_job_action(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        self.sagemaker_backend.stop_transform_job(self._get_param("TransformJobName"))
        return EmptyResult()

    def local_transform_runner(self: Any) -> str:
        """Attach or detach the runner; jobs a previous runner left running are failed."""
        attach = bool(json.loads(self.body or "{}").get("Attach"))
        RUNNER["attached"] = attach
        orphaned = 0
        for job in self.sagemaker_backend.transform_jobs.values():
            if job.transform_job_status in ("InProgress", "Stopping"):
                job.transform_job_status = "Failed"
                job.failure_reason = "The local runtime stopped while this job ran."
                job.transform_end_time = job.last_modified_time = utcnow()
                orphaned += 1
        return json.dumps({"Attached": attach, "Orphaned": orphaned})

    def local_transform_job_update(self: Any) -> str:
        doc = json.loads(self.body or "{}")
        job = self.sagemaker_backend.transform_jobs.get(doc.get("TransformJobName"))
        status = doc.get("Status")
        if job is None or status not in FINAL | {"InProgress"}:
            return json.dumps({"Updated": False})
        job.transform_job_status = status
        job.failure_reason = (doc.get("FailureReason") or "")[:1024] or None
        job.last_modified_time = utcnow()
        if status in FINAL:
            job.transform_end_time = job.last_modified_time
        return json.dumps({"Updated": True})

    original_parse = responses_cls.parse_parameters

    def parse_parameters(self: Any, request: Any) -> None:
        if self._get_action() in PRIVATE_ACTIONS:  # not in botocore's model: the body is read raw
            self.params = {}
            return
        original_parse(self, request)

    responses_cls.parse_parameters = parse_parameters
    backend_cls.create_transform_job = create_transform_job
    backend_cls.stop_transform_job = stop_transform_job
    responses_cls.stop_transform_job = stop_transform_job_action
    responses_cls.local_transform_runner = local_transform_runner
    responses_cls.local_transform_job_update = local_transform_job_update
