"""The two built-in training jobs of the recommender flow: NTM, then k-NN on its topic vectors.

Used by `builtin_training.py` (against AWS) and by `localsm/training.py` (`all --local`, the
same jobs in moto with the stand-ins' artifacts), so neither of those imports the other.
"""

from __future__ import annotations

import argparse
from typing import Any

from scripts import ntm_topics
from scripts.aws_cli import resolve_role
from scripts.aws_common import Aws, ScriptError, emit, log
from scripts.aws_waits import wait_for
from scripts.builtin_images import image_uri
from scripts.ntm_topics import RECORDIO
from scripts.sm_resources import describe_or_none, stamp

KNN_CSV = "text/csv; label_size=1"
# k-NN's k is a training hyper-parameter (the built-in answers k neighbours; AWS documents no
# per-request k). recommend collapses threads, so k must leave 10 distinct threads: measured on
# 20 Newsgroups (standins.train's neighbours_for_10_threads, docs/pipeline.md).
KNN_K = 50


def channel(name: str, uri: str, content_type: str, sharded: bool = False) -> dict[str, Any]:
    distribution = "ShardedByS3Key" if sharded else "FullyReplicated"
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": source},
        "ContentType": content_type,
    }


def run_training(
    aws: Aws,
    args: argparse.Namespace,
    algorithm: str,
    job: str,
    hyper: dict[str, str],
    channels: list[dict[str, Any]],
) -> str:
    """Start (unless it exists) and wait for a built-in algorithm's training job (ntm, knn):
    prints <ALGORITHM>_TRAINING_JOB and <ALGORITHM>_MODEL_DATA; returns the artifact URI."""
    image = getattr(args, f"{algorithm}_image") or image_uri(algorithm, aws.region)
    spec = {
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
        },
        "HyperParameters": hyper,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": f"{args.output.rstrip('/')}/{algorithm}/"},
    }
    sm = aws.client("sagemaker")
    if describe_or_none(sm.describe_training_job, TrainingJobName=job):
        log(f"training job {job} exists: not starting it again")
    else:
        resources = {"InstanceType": args.instance_type, "InstanceCount": args.instance_count}
        sm.create_training_job(
            TrainingJobName=job,
            RoleArn=resolve_role(aws, args.role),
            ResourceConfig={**resources, "VolumeSizeInGB": args.volume_gb},
            StoppingCondition={"MaxRuntimeInSeconds": args.max_runtime},
            **spec,
        )
        aws.note(f"started training job {job}")
    desc = wait_for(
        aws,
        f"training job {job}",
        lambda: sm.describe_training_job(TrainingJobName=job),
        status_key="TrainingJobStatus",
        done=["Completed"],
        failed=["Failed", "Stopped"],
        poll=30,
    )
    artifacts = str(desc.get("ModelArtifacts", {}).get("S3ModelArtifacts", f"s3://<{job} output>"))
    emit(f"{algorithm.upper()}_TRAINING_JOB", job)
    emit(f"{algorithm.upper()}_MODEL_DATA", artifacts)
    return artifacts


def ntm(aws: Aws, args: argparse.Namespace) -> dict[str, Any]:
    feature_dim: Any = args.feature_dim
    if feature_dim is None:
        vocab_uri = args.auxiliary.rstrip("/") + "/vocab.txt"
        if aws.dry_run:
            feature_dim = f"<lines in {vocab_uri}>"
        else:
            feature_dim = len(ntm_topics.s3_read(aws, vocab_uri).decode("utf-8").splitlines())
    hyper = {"feature_dim": str(feature_dim), "num_topics": str(args.num_topics), **args.hp}
    job = args.ntm_job_name or f"sm-text-ntm-{stamp()}"
    channels = [
        channel("train", args.train, RECORDIO, sharded=args.instance_count > 1),
        channel("auxiliary", args.auxiliary, "text/plain"),
    ]
    run_training(aws, args, "ntm", job, hyper, channels)
    return {"job": job, "num_topics": args.num_topics}


def knn(aws: Aws, args: argparse.Namespace, train: str, dim: Any, documents: Any) -> None:
    sample = args.sample_size or documents or f"<documents in {train}>"
    hyper = {
        "feature_dim": str(dim or args.num_topics),
        "k": str(args.k),
        "predictor_type": "classifier",
        "sample_size": str(sample),
        "index_metric": args.index_metric,
        "index_type": "faiss.Flat",
    }
    job = args.knn_job_name or f"sm-text-knn-{stamp()}"
    run_training(aws, args, "knn", job, hyper, [channel("train", train, KNN_CSV)])


# Read by endpoints.py create-pipeline: the built-in models' artifacts and k-NN's metric.
def training_job(aws: Aws, job: str) -> dict[str, Any]:
    sm = aws.client("sagemaker")
    desc = describe_or_none(sm.describe_training_job, TrainingJobName=job)
    if desc is None:
        if aws.dry_run:
            return {"ModelArtifacts": {"S3ModelArtifacts": f"s3://<output of {job}>/model.tar.gz"}}
        raise ScriptError(f"training job {job} not found", 2)
    if desc.get("TrainingJobStatus") != "Completed":
        status, reason = desc.get("TrainingJobStatus"), desc.get("FailureReason", "")
        raise ScriptError(f"training job {job} is {status}, not Completed {reason}".strip(), 2)
    return desc


def training_artifacts(aws: Aws, job: str) -> str:
    return str(training_job(aws, job)["ModelArtifacts"]["S3ModelArtifacts"])
