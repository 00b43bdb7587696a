"""Built-in NTM + k-NN training: the recommender flow of AWS's NTM + k-NN notebook, automated.

Sub-commands (`all` runs the three in order):
  ntm     NTM training job on the region's built-in image: "train" channel = the RecordIO word
          counts (--train), "auxiliary" = vocab.txt (--auxiliary); feature_dim = vocabulary size
          (read from vocab.txt unless --feature-dim), num_topics = --num-topics.
  topics  topic vectors of the training documents: a model from the NTM job, a batch transform of
          the training data (SplitType RecordIO, Accept application/jsonlines), then k-NN
          training CSV "index,w1..wK" (label = document index: parts in natural order, records
          in file order; output lines checked against record counts) uploaded to S3.
  knn     k-NN training job on those (unit) vectors: index_metric L2 (--index-metric; L2 lists
          the nearest first under any reading, see serving/neighbours.py), k (--k, enough
          neighbours that 10 distinct threads remain: see docs/pipeline.md), feature_dim =
          num_topics, sample_size = number of documents unless given.

`all --local` (offline, against moto only) trains the NTM and k-NN STAND-INS on this machine in
place of the jobs' compute, and puts their artifacts where the moto jobs say: see
scripts/local_training.py.

Jobs are named <prefix>-<timestamp> unless --*-job-name; an existing job of that name is waited
for, not started again. Waits print progress; a failed job prints its FailureReason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import local_training, ntm_topics
from scripts.aws_cli import common_parent, make_parser, resolve_role, run_main
from scripts.aws_common import Aws, ScriptError, emit, log, parse_s3_uri, wait_for
from scripts.builtin_images import image_uri
from scripts.sm_resources import describe_or_none

RECORDIO = "application/x-recordio-protobuf"
KNN_CSV = "text/csv; label_size=1"
# k-NN's k is a training hyper-parameter (the built-in answers k neighbours; AWS documents no
# per-request k). recommend collapses threads, so k must leave 10 distinct threads: measured on
# 20 Newsgroups (standins.train's neighbours_for_10_threads, docs/pipeline.md).
KNN_K = 50


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def channel(name: str, uri: str, content_type: str, sharded: bool = False) -> dict[str, Any]:
    distribution = "ShardedByS3Key" if sharded else "FullyReplicated"
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": source},
        "ContentType": content_type,
    }


def run_training(aws: Aws, args: argparse.Namespace, job: str, spec: dict[str, Any]) -> str:
    """Start (unless it exists) and wait for a training job; returns its model artifact URI."""
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
    return str(desc.get("ModelArtifacts", {}).get("S3ModelArtifacts", f"s3://<{job} output>"))


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
    spec = {
        "AlgorithmSpecification": {
            "TrainingImage": args.ntm_image or image_uri("ntm", aws.region),
            "TrainingInputMode": "File",
        },
        "HyperParameters": hyper,
        "InputDataConfig": [
            channel("train", args.train, RECORDIO, sharded=args.instance_count > 1),
            channel("auxiliary", args.auxiliary, "text/plain"),
        ],
        "OutputDataConfig": {"S3OutputPath": f"{args.output.rstrip('/')}/ntm/"},
    }
    artifacts = run_training(aws, args, job, spec)
    emit("NTM_TRAINING_JOB", job)
    emit("NTM_MODEL_DATA", artifacts)
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
    spec = {
        "AlgorithmSpecification": {
            "TrainingImage": args.knn_image or image_uri("knn", aws.region),
            "TrainingInputMode": "File",
        },
        "HyperParameters": hyper,
        "InputDataConfig": [channel("train", train, KNN_CSV)],
        "OutputDataConfig": {"S3OutputPath": f"{args.output.rstrip('/')}/knn/"},
    }
    artifacts = run_training(aws, args, job, spec)
    emit("KNN_TRAINING_JOB", job)
    emit("KNN_MODEL_DATA", artifacts)


def handler(args: argparse.Namespace) -> int:
    try:
        args.hp = dict(pair.split("=", 1) for pair in getattr(args, "hp", None) or [])
    except ValueError:
        raise ScriptError("--hp takes KEY=VALUE", 2) from None
    aws = Aws.from_args(args)
    if getattr(args, "local", False):
        return local_training.run(aws, args)
    if args.command in ("ntm", "all"):
        for name in ("train", "auxiliary"):
            if not getattr(args, name):
                raise ScriptError(f"ntm needs --{name} s3://...", 2)
            parse_s3_uri(getattr(args, name))
        ntm_job = ntm(aws, args)["job"]
    else:
        ntm_job = getattr(args, "ntm_training_job", None)
    if args.command in ("topics", "all"):
        if not ntm_job:
            raise ScriptError("topics needs --ntm-training-job", 2)
        if not args.train:
            raise ScriptError("topics needs --train s3://... (the NTM training data)", 2)
        made = ntm_topics.topics(aws, args, ntm_job)
        knn_train, dim, documents = made["knn_train"], made["dim"], made["documents"]
    else:
        knn_train, dim, documents = getattr(args, "knn_train", None), None, None
    if args.command in ("knn", "all"):
        if not knn_train:
            raise ScriptError("knn needs --knn-train s3://... (from topics)", 2)
        knn(aws, args, knn_train, dim, documents)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__, with_common=False)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False, parents=[common_parent()])
    g = common.add_argument_group("jobs")
    g.add_argument("--output", required=True, help="s3:// prefix for models, topics, k-NN data")
    g.add_argument("--role", help="execution role ARN or name ($SAGEMAKER_ROLE_ARN)")
    g.add_argument("--instance-type", default="ml.c5.xlarge", help="training (%(default)s)")
    g.add_argument("--instance-count", type=int, default=1)
    g.add_argument("--volume-gb", type=int, default=10)
    g.add_argument("--max-runtime", type=int, default=4 * 3600, help="seconds per job")
    g.add_argument("--train", help="s3:// prefix of the RecordIO word counts (train/)")
    g.add_argument("--ntm-image", help="default: the region's built-in NTM image")
    g.add_argument("--knn-image", help="default: the region's built-in k-NN image")
    g.add_argument("--num-topics", type=int, default=50,
                   help="NTM topics; must equal the model's num_topics (ntm_data.json; "
                   "serving.train's default is 50), which topics-to-knn checks")
    sub_ntm = argparse.ArgumentParser(add_help=False)
    sub_ntm.add_argument("--auxiliary", help="s3:// prefix holding vocab.txt (auxiliary/)")
    sub_ntm.add_argument("--feature-dim", type=int, help="vocabulary size (default: vocab.txt)")
    sub_ntm.add_argument("--hp", action="append", metavar="KEY=VALUE", help="more NTM params")
    sub_ntm.add_argument("--ntm-job-name")
    sub_topics = argparse.ArgumentParser(add_help=False)
    sub_topics.add_argument("--ntm-training-job", help="a Completed NTM job (topics, knn)")
    sub_topics.add_argument("--transform-job-name")
    sub_topics.add_argument("--transform-instance-type", default="ml.m5.large")
    sub_knn = argparse.ArgumentParser(add_help=False)
    sub_knn.add_argument("--knn-train", help="s3:// prefix of the k-NN CSV (from topics)")
    sub_knn.add_argument("--k", type=int, default=KNN_K,
                         help="neighbours k-NN returns; recommend keeps one per thread "
                         "(%(default)s, measured: docs/pipeline.md)")
    sub_knn.add_argument("--sample-size", type=int, help="default: number of documents")
    sub_knn.add_argument(
        "--index-metric", default="L2", choices=["L2", "COSINE", "INNER_PRODUCT"],
        help="%(default)s recommended; endpoints.py tells recommend the job's metric",
    )
    sub_knn.add_argument("--knn-job-name")
    sub_local = argparse.ArgumentParser(add_help=False)
    sub_local.add_argument(
        "--local",
        action="store_true",
        help="offline (moto): train the stand-ins locally instead (scripts/local_training.py)",
    )
    layout = {
        "ntm": [sub_ntm],
        "topics": [sub_topics],
        "knn": [sub_topics, sub_knn],
        "all": [sub_ntm, sub_topics, sub_knn, sub_local],
    }
    for name, parents in layout.items():
        sub.add_parser(name, parents=[common, *parents], help=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
