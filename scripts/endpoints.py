"""Deploy, update, scale and tear down the classifier and recommender endpoints.

Sub-commands:
  create-classifier  one container of our image, SERVING_STAGE=classify
  create-pipeline    the recommender, InferenceExecutionConfig Serial:
                     ntm-features -> NTM -> topics-to-knn -> k-NN -> recommend
                     (NTM / k-NN model data: --ntm-model-data / --knn-model-data, or the
                     artifacts of --ntm-training-job / --knn-training-job)
  update             new model + endpoint config from the endpoint's current ones with --image,
                     --model-data, --instance-type/--instance-count, --memory-mb/--max-concurrency
                     or --data-capture replaced; update_endpoint
  autoscale          target tracking on invocations per instance; --remove takes it off
  delete             the endpoint, its scaling, its config and models, and older <name>-<hash> ones

Compute: instances (--instance-type/--instance-count) or, for the classifier only, --serverless
[--memory-mb] [--max-concurrency]; --data-capture s3://... records requests and responses
(instances only; scripts/capture.py reads them). Refusals and their AWS sources:
scripts/endpoint_config.py.

create-* are idempotent: the same inputs change nothing, other inputs update the endpoint in place
through a new config. They wait for InService with progress unless --no-wait. Each prints
ENDPOINT_NAME=, MODEL_NAME=, ENDPOINT_CONFIG_NAME= and RESULT=created|updated|unchanged.

create-pipeline and update (of a recommender) then run the self-check (scripts/selfcheck.py):
a few catalog documents' text must come back verbose with itself first; if not, the message says
which assumption broke, and an updated endpoint is rolled back to its previous config.
--no-verify (or --no-wait) skips it. The recommend container is told k-NN's metric
(SERVING_KNN_METRIC) from the k-NN training job's index_metric, or --knn-metric.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import autoscaling, containers, endpoint_config, endpoint_update, selfcheck
from scripts.aws_cli import common_parent, make_parser, require_image, resolve_role, run_main
from scripts.aws_common import Aws, ScriptError, emit, parse_s3_uri
from scripts.builtin_images import image_uri
from scripts.sm_resources import (
    check_name,
    describe_or_none,
    ensure_endpoint_config,
    ensure_model,
    model_definition,
    teardown,
)
from scripts.training_jobs import training_artifacts, training_job

ENV_METRIC, ENV_DISTANCE = endpoint_update.ENV_METRIC, endpoint_update.ENV_DISTANCE


def s3_arg(value: str) -> str:
    parse_s3_uri(value)
    return value


def converge(
    aws: Aws, args: argparse.Namespace, boxes: list[dict[str, Any]], mode: str | None,
    check: dict[str, Any] | None = None,
) -> int:
    name = check_name(args.name)
    role = resolve_role(aws, args.role)
    endpoint_config.refuse_conversion(aws, name, args.serverless)
    model = ensure_model(aws, name, model_definition(role, boxes, mode))
    variants = [endpoint_config.variant_for(args, model, args.variant, name)]
    config = ensure_endpoint_config(aws, name, variants, endpoint_config.data_capture(args))
    result = selfcheck.deploy_checked(aws, args, name, config, check)
    for key, value in (("ENDPOINT_NAME", name), ("MODEL_NAME", model)):
        emit(key, value)
    emit("ENDPOINT_CONFIG_NAME", config)
    emit("RESULT", result)
    return 0


def create_classifier(args: argparse.Namespace) -> int:
    endpoint_config.check(args, pipeline=False)
    aws = Aws.from_args(args)
    image = require_image(args.image)
    env = {**endpoint_config.serverless_env(args), **args.env}
    boxes = containers.classifier_containers(
        image, args.model_data, args.accept or containers.ACCEPT["classify"], env
    )
    return converge(aws, args, boxes, None)


def create_pipeline(args: argparse.Namespace) -> int:
    endpoint_config.check(args, pipeline=True)
    aws = Aws.from_args(args)
    image = require_image(args.image)
    ntm_data = args.ntm_model_data or (
        args.ntm_training_job and training_artifacts(aws, args.ntm_training_job)
    )
    knn_job = training_job(aws, args.knn_training_job) if args.knn_training_job else {}
    knn_data = args.knn_model_data or knn_job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not ntm_data or not knn_data:
        raise ScriptError(
            "need NTM and k-NN model data: --ntm-model-data/--ntm-training-job and "
            "--knn-model-data/--knn-training-job",
            2,
        )
    accept = dict(args.stage_accept)
    if args.features_accept:
        accept["ntm-features"] = args.features_accept
    boxes = containers.recommender_containers(
        image,
        args.model_data,
        args.ntm_image or image_uri("ntm", aws.region),
        ntm_data,
        args.knn_image or image_uri("knn", aws.region),
        knn_data,
        accept,
        args.env,
    )
    # recommend orders k-NN's answer by the metric k-NN was trained with (serving/neighbours.py)
    job_metric = knn_job.get("HyperParameters", {}).get("index_metric")
    metric = (args.knn_metric or args.env.get(ENV_METRIC) or job_metric or "L2").upper()
    boxes[-1]["Environment"][ENV_METRIC] = metric
    check = {"model_data": args.model_data, "metric": metric,
             "distance": args.env.get(ENV_DISTANCE, "euclidean"),
             "knn_train": selfcheck.train_channel(knn_job) if not args.knn_model_data else None}
    return converge(aws, args, boxes, "Serial", check)


def autoscale(args: argparse.Namespace) -> int:
    aws = Aws.from_args(args)
    name = check_name(args.name)
    if args.remove:
        autoscaling.remove(aws, name, [args.variant])
        return 0
    if not 1 <= args.min_instances <= args.max_instances:
        raise ScriptError("need 1 <= --min-instances <= --max-instances", 2)
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_endpoint, EndpointName=name)
    if desc is None and not aws.dry_run:
        raise ScriptError(f"no endpoint {name}: create it first", 2)
    endpoint_config.refuse_autoscaling(name, desc)
    policy = autoscaling.register(
        aws,
        name,
        args.variant,
        args.min_instances,
        args.max_instances,
        args.target_invocations,
        args.scale_in_cooldown,
        args.scale_out_cooldown,
    )
    emit("SCALING_POLICY", policy)
    return 0


def delete(args: argparse.Namespace) -> int:
    aws = Aws.from_args(args)
    name = check_name(args.name)
    if not teardown(aws, name, wait=not args.no_wait) and not aws.dry_run:
        aws.note(f"nothing named {name} to delete")
    emit("DELETED", name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__, with_common=False)
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_parent()

    def deployable(cmd: str, default_name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(cmd, parents=[common], help=help_text, description=help_text)
        p.add_argument("--name", default=default_name, help="endpoint name (%(default)s)")
        p.add_argument("--image", help="our image URI (default: $IMAGE_URI)")
        p.add_argument("--model-data", type=s3_arg, required=True, help="s3://.../model.tar.gz")
        p.add_argument("--role", help="execution role ARN or name ($SAGEMAKER_ROLE_ARN)")
        endpoint_config.add_options(p, creating=True)
        p.add_argument("--variant", default="AllTraffic")
        p.add_argument(
            "--env", action="append", metavar="KEY=VALUE", help="extra env for our containers"
        )
        p.add_argument("--no-wait", action="store_true", help="do not wait for InService")
        p.add_argument("--keep-old", action="store_true", help="keep a replaced config/model")
        p.add_argument("--no-verify", action="store_true",
                       help="skip the recommender's self-check (scripts/selfcheck.py)")
        return p

    p = deployable("create-classifier", "sm-text-classifier", "classifier endpoint")
    p.add_argument("--accept", help="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (application/json)")
    p.set_defaults(func=create_classifier)

    p = deployable("create-pipeline", "sm-text-recommender", "recommender pipeline endpoint")
    p.add_argument("--ntm-model-data", type=s3_arg)
    p.add_argument("--ntm-training-job")
    p.add_argument("--knn-model-data", type=s3_arg)
    p.add_argument("--knn-training-job")
    p.add_argument("--knn-metric", choices=["L2", "COSINE", "INNER_PRODUCT"],
                   help="k-NN's index_metric, for recommend (default: the k-NN training job's, "
                   "else L2)")
    p.add_argument("--ntm-image", help="default: the built-in NTM image of the region")
    p.add_argument("--knn-image", help="default: the built-in k-NN image of the region")
    p.add_argument(
        "--features-accept",
        choices=["application/x-recordio-protobuf", "application/json"],
        help="what ntm-features emits (default application/x-recordio-protobuf)",
    )
    p.add_argument(
        "--stage-accept",
        action="append",
        metavar="STAGE=TYPE",
        help="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT of one container (ntm-features, ntm, "
        "topics-to-knn, knn, recommend), e.g. ntm=application/jsonlines; repeatable",
    )
    p.set_defaults(func=create_pipeline)

    p = sub.add_parser("update", parents=[common], help="update an endpoint via a new config")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--image", help="new image for our containers")
    p.add_argument("--model-data", type=s3_arg, help="new model data for our containers")
    endpoint_config.add_options(p, creating=False)
    p.add_argument("--no-data-capture", action="store_true", help="turn data capture off")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--keep-old", action="store_true", help="keep the replaced config/model")
    p.add_argument("--no-verify", action="store_true", help="skip the recommender's self-check")
    p.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="set or replace one environment variable of our containers")
    p.set_defaults(func=endpoint_update.update)

    p = sub.add_parser("autoscale", parents=[common], help="target-tracking autoscaling")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--variant", default="AllTraffic")
    p.add_argument("--min-instances", type=int, default=1)
    p.add_argument("--max-instances", type=int, default=4)
    p.add_argument(
        "--target-invocations",
        type=float,
        default=100.0,
        help="invocations per instance per minute to hold (%(default)s)",
    )
    p.add_argument("--scale-in-cooldown", type=int, default=300)
    p.add_argument("--scale-out-cooldown", type=int, default=60)
    p.add_argument("--remove", action="store_true", help="delete the policy and deregister")
    p.set_defaults(func=autoscale)

    p = sub.add_parser("delete", parents=[common], help="tear down an endpoint")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the deletion")
    p.set_defaults(func=delete)
    return parser


def handler(args: argparse.Namespace) -> int:
    try:
        args.env = containers.parse_env(getattr(args, "env", None))
        args.stage_accept = containers.parse_accept(getattr(args, "stage_accept", None))
    except ValueError as exc:
        raise ScriptError(str(exc), 2) from None
    return int(args.func(args))


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
