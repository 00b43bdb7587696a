"""``builtin_training.py all --local``: the NTM and k-NN steps with the STAND-INS' local training.

For offline runs against moto (scripts/localsm/aws.py), where training and transform jobs
"complete" at once and produce nothing. The AWS side runs exactly as in the real mode: the same
training jobs (built-in images, hyper-parameters, channels) and the same NTM model + batch
transform are created in moto, and k-NN's CSV is built from the transform output by the same code
(scripts/ntm_topics.py). Only the compute is local, in their place:

1. the ``train`` and ``auxiliary`` channels are downloaded from S3 (parts renamed so that name
   order is the natural order train_part0, 1, ..., 10 that indexes catalog.jsonl);
2. ``python -m standins.train all`` fits the NTM stand-in, infers the training documents' topic
   vectors and builds the k-NN stand-in (``--num-topics``, ``--k``, ``--index-metric``,
   ``--sample-size``; NTM's ``--hp`` are not used);
3. each ``model.tar.gz`` is uploaded where its moto training job says its artifacts are
   (``<output>/ntm|knn/<job>/output/model.tar.gz``, SageMaker's layout), and the topic vectors
   as the batch transform's JSON Lines (``<output>/topics/<transform job>/<part>.out``). With
   the local runtime running (``aws.py start --runtime``), the NTM transform job then really
   runs, with the NTM stand-in's container, and its ``.out`` objects replace these.

Prints the same KEY=value lines as the real mode. Refuses to run unless the SageMaker endpoint
is on this machine (``AWS_ENDPOINT_URL[_SAGEMAKER]`` on 127.0.0.1/localhost): against a real
account it would start real training jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/

from scripts import knn_data, ntm_topics
from scripts.aws_common import REPO_ROOT, Aws, ScriptError, log, parse_s3_uri
from scripts.sm_resources import stamp as job_stamp
from scripts.training_jobs import knn, ntm

LOCAL_URL = re.compile(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/?$")


def check_local_endpoint() -> None:
    url = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER") or os.environ.get("AWS_ENDPOINT_URL", "")
    if not LOCAL_URL.match(url):
        raise ScriptError(
            "--local runs only against a local emulator (AWS_ENDPOINT_URL on 127.0.0.1: "
            'eval "$(python scripts/localsm/aws.py env)"); against AWS, drop --local',
            2,
        )


def download(aws: Aws, prefix: str, dest: Path, natural: bool) -> list[str]:
    """Every object under prefix into dest; returns the original names in natural order."""
    bucket, _ = parse_s3_uri(prefix)
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for number, key in enumerate(ntm_topics.s3_list(aws, prefix)):
        name = key.rsplit("/", 1)[-1]
        local = f"{number:05d}_{name}" if natural else name
        aws.client("s3").download_file(bucket, key, str(dest / local))
        names.append(name)
    if not names:
        raise ScriptError(f"nothing under {prefix}", 2)
    return names


def train_standins(args: argparse.Namespace, data: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "standins.train", "all", "--ntm-data", str(data)]
    cmd += ["--num-topics", str(args.num_topics), "--k", str(args.k)]
    cmd += ["--index-metric", args.index_metric, "--out", str(out)]
    if args.sample_size:
        cmd += ["--sample-size", str(args.sample_size)]
    log("$ " + " ".join(cmd[1:]))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScriptError(f"stand-in training failed:\n{(done.stdout + done.stderr)[-2000:]}")
    log(f"stand-ins trained: {done.stdout.strip().splitlines()[-1]}")


def upload_artifact(aws: Aws, job: str, path: Path) -> str:
    desc = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    uri = str(desc["ModelArtifacts"]["S3ModelArtifacts"])
    bucket, key = parse_s3_uri(uri)
    aws.client("s3").upload_file(str(path), bucket, key)
    log(f"{path.parent.name} stand-in model -> {uri}")
    return uri


def seed_transform_output(aws: Aws, args: argparse.Namespace, data: Path, out: Path) -> None:
    """The topic vectors as the NTM batch transform writes them: <part>.out, JSON Lines."""
    import numpy as np

    vectors = np.load(out / "topic_vectors.npy", allow_pickle=False)
    prefix = f"{args.output.rstrip('/')}/topics/{args.transform_job_name}/"
    bucket, key_prefix = parse_s3_uri(prefix)
    first = 0
    for path in sorted((data / "train").iterdir(), key=lambda p: knn_data.natural_key(p.name)):
        count = knn_data.count_records(path.read_bytes())
        rows = vectors[first : first + count]
        text = "".join(json.dumps({"topic_weights": [float(w) for w in r]}) + "\n" for r in rows)
        name = path.name.split("_", 1)[1]
        aws.client("s3").put_object(
            Bucket=bucket, Key=f"{key_prefix}{name}.out", Body=text.encode()
        )
        first += count
    if first != len(vectors):
        raise ScriptError(f"{first} training records but {len(vectors)} topic vectors")


def run(aws: Aws, args: argparse.Namespace) -> int:
    """`all --local`: see the module docstring."""
    if args.command != "all":
        raise ScriptError("--local runs the three steps together: use `all --local`", 2)
    if aws.dry_run:
        raise ScriptError("--local makes no sense with --dry-run: drop one of them", 2)
    check_local_endpoint()
    for name in ("train", "auxiliary"):
        if not getattr(args, name):
            raise ScriptError(f"all --local needs --{name} s3://...", 2)
    stamp = job_stamp()
    args.ntm_job_name = args.ntm_job_name or f"sm-text-ntm-{stamp}"
    args.transform_job_name = args.transform_job_name or f"sm-text-ntm-topics-{stamp}"
    args.knn_job_name = args.knn_job_name or f"sm-text-knn-{stamp}"
    with tempfile.TemporaryDirectory(prefix="sm-local-training-") as tmp:
        data, out = Path(tmp) / "ntm", Path(tmp) / "out"
        download(aws, args.train, data / "train", natural=True)
        download(aws, args.auxiliary, data / "auxiliary", natural=False)
        train_standins(args, data, out)
        ntm_job = ntm(aws, args)["job"]
        upload_artifact(aws, ntm_job, out / "ntm" / "model.tar.gz")
        seed_transform_output(aws, args, data, out)
        made = ntm_topics.topics(aws, args, ntm_job)
        knn(aws, args, made["knn_train"], made["dim"], made["documents"])
        upload_artifact(aws, args.knn_job_name, out / "knn" / "model.tar.gz")
    return 0
