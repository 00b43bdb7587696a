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
scripts/localsm/training.py.

Jobs are named <prefix>-<timestamp> unless --*-job-name; an existing job of that name is waited
for, not started again. Waits print progress; a failed job prints its FailureReason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import ntm_topics
from scripts.aws_cli import common_parent, make_parser, run_main
from scripts.aws_common import Aws, ScriptError, parse_s3_uri
from scripts.localsm import training as local_training
from scripts.training_jobs import KNN_K, knn, ntm


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
        help="offline (moto): train the stand-ins locally instead (scripts/localsm/training.py)",
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
