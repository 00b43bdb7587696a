"""endpoints.py update: a new model and endpoint config from the endpoint's current ones.

Our containers get --image, --model-data and --env; the variant keeps its compute unless told
(a serverless endpoint may move to instances, not back: scripts/endpoint_config.py); data capture
is kept unless --data-capture replaces it or --no-data-capture drops it. A recommender is
self-checked after the update and rolled back if the check fails (scripts/selfcheck.py).
"""

from __future__ import annotations

import argparse

from scripts import containers, endpoint_config, selfcheck
from scripts.aws_cli import require_image
from scripts.aws_common import Aws, ScriptError, emit
from scripts.sm_resources import (
    check_name,
    describe_or_none,
    ensure_endpoint_config,
    ensure_model,
    model_definition,
)

ENV_METRIC = "SERVING_KNN_METRIC"
ENV_DISTANCE = "SERVING_KNN_DISTANCE"


def update(args: argparse.Namespace) -> int:
    endpoint_config.refuse_capture_conflict(args)
    aws = Aws.from_args(args)
    name = check_name(args.name)
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_endpoint, EndpointName=name)
    if desc is None:
        raise ScriptError(f"no endpoint {name} to update: create it first", 2)
    config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    current = config["ProductionVariants"][0]
    model = sm.describe_model(ModelName=current["ModelName"])
    boxes = [containers.reusable(c) for c in model.get("Containers") or [model["PrimaryContainer"]]]
    for box in boxes:
        if containers.is_custom(box):
            box["Image"] = require_image(args.image) if args.image else box["Image"]
            box["ModelDataUrl"] = args.model_data or box.get("ModelDataUrl")
            box["Environment"] = {**box.get("Environment", {}), **args.env}
    mode = (model.get("InferenceExecutionConfig") or {}).get("Mode")
    if len(boxes) > 1:
        mode = mode or "Serial"  # moto drops InferenceExecutionConfig; SageMaker's default
    endpoint_config.check(args, len(boxes) > 1, name, current)
    definition = model_definition(model["ExecutionRoleArn"], boxes, mode)
    new_model = ensure_model(aws, name, definition)
    new_variant = endpoint_config.variant_for(args, new_model, current["VariantName"], name,
                                              current)
    capture = endpoint_config.capture_for_update(args, config, new_variant)
    new_config = ensure_endpoint_config(aws, name, [new_variant], capture)
    recommend = [b for b in boxes if (b.get("Environment") or {}).get(containers.ENV_STAGE)
                 == "recommend"]
    check = None
    if recommend and recommend[0].get("ModelDataUrl"):
        env = recommend[0]["Environment"]
        check = {"model_data": recommend[0]["ModelDataUrl"],
                 "metric": env.get(ENV_METRIC, "L2"),
                 "distance": env.get(ENV_DISTANCE, "euclidean"), "knn_train": None}
    result = selfcheck.deploy_checked(aws, args, name, new_config, check)
    emit("ENDPOINT_NAME", name)
    emit("MODEL_NAME", new_model)
    emit("ENDPOINT_CONFIG_NAME", new_config)
    emit("RESULT", result)
    return 0
