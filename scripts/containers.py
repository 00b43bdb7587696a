"""Container definitions for the two endpoints, one place for what each container gets.

Classifier: one container of our image, stage ``classify``.

Recommender, an inference pipeline run in ``Serial`` mode (each response is the next request)::

    ntm-features -> NTM (built-in) -> topics-to-knn -> k-NN (built-in) -> recommend

Every container gets ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``: inside a pipeline a container
cannot count on the Accept header it receives, so it answers in this type and the next one reads
the Content-Type. Our image also gets ``SERVING_STAGE``. Defaults (``ACCEPT``):

    ntm-features   application/x-recordio-protobuf   sparse word counts NTM reads
    ntm            application/json                  {"predictions":[{"topic_weights":[...]}]}
    topics-to-knn  text/csv                          one row of topic weights per document
    knn            application/json; verbose=true    adds "labels" and "distances" per row
    recommend      application/json                  what the client receives
"""

from __future__ import annotations

from typing import Any

from serving.config import ENV_STAGE

CUSTOM_STAGES = ("ntm-features", "topics-to-knn", "recommend")
ACCEPT: dict[str, str] = {
    "classify": "application/json",
    "ntm-features": "application/x-recordio-protobuf",
    "ntm": "application/json",
    "topics-to-knn": "text/csv",
    "knn": "application/json; verbose=true",
    "recommend": "application/json",
}
ENV_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
# What CreateModel accepts back from DescribeModel when a model is re-created for an update.
CONTAINER_KEYS = ("ContainerHostname", "Image", "Mode", "ModelDataUrl", "Environment")


def custom_container(
    image: str,
    model_data: str | None,
    stage: str,
    accept: str,
    extra_env: dict[str, str] | None = None,
    hostname: str | None = None,
) -> dict[str, Any]:
    env = {**(extra_env or {}), ENV_STAGE: stage, ENV_ACCEPT: accept}
    container: dict[str, Any] = {"Image": image, "Environment": env}
    if model_data:
        container["ModelDataUrl"] = model_data
    if hostname:
        container["ContainerHostname"] = hostname
    return container


def builtin_container(image: str, model_data: str, accept: str, hostname: str) -> dict[str, Any]:
    return {
        "ContainerHostname": hostname,
        "Image": image,
        "ModelDataUrl": model_data,
        "Environment": {ENV_ACCEPT: accept},
    }


def classifier_containers(
    image: str,
    model_data: str,
    accept: str = ACCEPT["classify"],
    extra_env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    return [custom_container(image, model_data, "classify", accept, extra_env)]


def recommender_containers(
    image: str,
    model_data: str,
    ntm_image: str,
    ntm_model_data: str,
    knn_image: str,
    knn_model_data: str,
    accept: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The five pipeline containers, in order, each with its hostname and Environment."""
    acc = {**ACCEPT, **(accept or {})}

    def custom(stage: str) -> dict[str, Any]:
        return custom_container(image, model_data, stage, acc[stage], extra_env, hostname=stage)

    return [
        custom("ntm-features"),
        builtin_container(ntm_image, ntm_model_data, acc["ntm"], "ntm"),
        custom("topics-to-knn"),
        builtin_container(knn_image, knn_model_data, acc["knn"], "knn"),
        custom("recommend"),
    ]


def reusable(container: dict[str, Any]) -> dict[str, Any]:
    """A DescribeModel container trimmed to what CreateModel takes."""
    return {k: container[k] for k in CONTAINER_KEYS if container.get(k)}


def is_custom(container: dict[str, Any]) -> bool:
    """Our image's containers are the ones that carry SERVING_STAGE."""
    return ENV_STAGE in (container.get("Environment") or {})


def parse_accept(pairs: list[str] | None) -> dict[str, str]:
    """``STAGE=TYPE`` pairs (``--stage-accept``) -> {stage: its default Accept}."""
    accept: dict[str, str] = {}
    for pair in pairs or []:
        stage, sep, value = pair.partition("=")
        if not sep or stage not in ACCEPT or stage == "classify" or not value.strip():
            stages = ", ".join(s for s in ACCEPT if s != "classify")
            raise ValueError(f"--stage-accept takes STAGE=TYPE with STAGE one of {stages}")
        accept[stage] = value.strip()
    return accept


def parse_env(pairs: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes KEY=VALUE, got {pair!r}")
        env[key] = value
    return env
