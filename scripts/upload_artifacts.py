"""Upload the model (as model.tar.gz) and the training data `train` wrote to S3.

  python scripts/upload_artifacts.py --model-dir .work/model --output-data-dir .work/output

- --model-dir: packed into model.tar.gz with its files at the archive root (SageMaker unpacks it
  into /opt/ml/model), in sorted order, owner root, gzip timestamp 0, so the same directory gives
  the same bytes; uploaded to s3://BUCKET/PREFIX/model/model.tar.gz.
- --output-data-dir: the NTM data under it (ntm/, as `train` writes it) keeps its relative paths
  under s3://BUCKET/PREFIX/data/: train/train_part*.pbr (NTM "train" channel, sparse
  RecordIO-protobuf), auxiliary/vocab.txt (NTM "auxiliary" channel), catalog.jsonl (document
  index -> id/title: the k-NN labels) and ntm_data.json.
- The bucket (--bucket, default sagemaker-<region>-<account>, the SageMaker SDK's default) is
  created when missing. A file whose sha256 matches the object's metadata is not sent again.

Prints MODEL_DATA_URL=..., NTM_TRAIN_S3=..., NTM_AUXILIARY_S3=..., DATA_S3=... on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from scripts.aws_cli import make_parser, run_main
from scripts.aws_common import Aws, ScriptError, emit, error_code, is_not_found, log
from serving.artifact import sha256_file

DEFAULT_PREFIX = "sm-text-pipeline"


def make_model_tarball(model_dir: Path, dest: Path) -> Path:
    """Pack model_dir's contents (not the directory itself) reproducibly into dest."""
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise ScriptError(f"model directory {model_dir} is missing or empty: run train first", 2)
    paths = sorted(p for p in model_dir.rglob("*") if p.is_file() or p.is_dir())
    with (
        dest.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in paths:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(model_dir)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_file():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return dest


class Progress:
    """upload_file callback: a log line every 10 % for files of 16 MB and more."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size, self.sent, self.shown = name, size, 0, 0
        self.lock = threading.Lock()

    def __call__(self, sent: int) -> None:
        with self.lock:
            self.sent += sent
            tenth = self.sent * 10 // max(self.size, 1)
            if self.size >= 16 << 20 and tenth > self.shown:
                self.shown = tenth
                log(f"  {self.name}: {tenth * 10} % of {self.size / 1e6:.1f} MB")


def ensure_bucket(aws: Aws, bucket: str) -> None:
    s3 = aws.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if error_code(exc) in {"403", "AccessDenied"}:
            raise ScriptError(f"bucket {bucket} exists but this identity cannot use it") from None
        if not is_not_found(exc):
            raise
    params: dict[str, object] = {"Bucket": bucket}
    if aws.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    s3.create_bucket(**params)
    aws.note(f"created bucket {bucket}")


def upload(aws: Aws, path: Path, bucket: str, key: str) -> str:
    """Upload unless the object already has this file's sha256; returns the s3:// URI."""
    s3 = aws.client("s3")
    digest = sha256_file(path)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == digest:
            aws.note(f"unchanged: s3://{bucket}/{key}")
            return f"s3://{bucket}/{key}"
    except ClientError as exc:
        if not is_not_found(exc):
            raise
    size = path.stat().st_size
    s3.upload_file(
        Filename=str(path),
        Bucket=bucket,
        Key=key,
        ExtraArgs={"Metadata": {"sha256": digest}},
        Callback=None if aws.dry_run else Progress(path.name, size),
    )
    aws.note(f"uploaded {path} ({size / 1e6:.2f} MB) -> s3://{bucket}/{key}")
    return f"s3://{bucket}/{key}"


def ntm_data_dir(data_dir: Path) -> Path:
    """The NTM data `train` wrote: <output data dir>/ntm/ (or that directory itself)."""
    if not data_dir.is_dir():
        raise ScriptError(f"output data directory {data_dir} not found: run train first", 2)
    ntm = data_dir / "ntm" if (data_dir / "ntm").is_dir() else data_dir
    if not list((ntm / "train").glob("*.pbr")):
        raise ScriptError(f"no {ntm}/train/*.pbr: not the output data of `train`?", 2)
    if not (ntm / "auxiliary" / "vocab.txt").is_file():
        raise ScriptError(f"no {ntm}/auxiliary/vocab.txt: not the output data of `train`?", 2)
    return ntm


def handler(args: argparse.Namespace) -> int:
    if not args.model_dir and not args.output_data_dir:
        raise ScriptError("nothing to upload: pass --model-dir and/or --output-data-dir", 2)
    ntm_dir = ntm_data_dir(args.output_data_dir) if args.output_data_dir else None
    aws = Aws.from_args(args)
    bucket = args.bucket or f"sagemaker-{aws.region}-{aws.account_id()}"
    prefix = args.prefix.strip("/")
    ensure_bucket(aws, bucket)
    if args.model_dir:
        with tempfile.TemporaryDirectory() as tmp:
            tarball = make_model_tarball(args.model_dir, Path(tmp) / "model.tar.gz")
            uri = upload(aws, tarball, bucket, f"{prefix}/model/model.tar.gz")
        emit("MODEL_DATA_URL", uri)
    if ntm_dir:
        root = ntm_dir
        files = sorted(p for p in root.rglob("*") if p.is_file())
        log(f"uploading {len(files)} files from {root}")
        for path in files:
            upload(aws, path, bucket, f"{prefix}/data/{path.relative_to(root).as_posix()}")
        emit("NTM_TRAIN_S3", f"s3://{bucket}/{prefix}/data/train/")
        emit("NTM_AUXILIARY_S3", f"s3://{bucket}/{prefix}/data/auxiliary/")
        emit("DATA_S3", f"s3://{bucket}/{prefix}/data/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, help="the model directory `train` wrote")
    parser.add_argument("--output-data-dir", type=Path, help="the output data `train` wrote")
    parser.add_argument("--bucket", help="S3 bucket (default: sagemaker-<region>-<account>)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (%(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), handler, argv)


if __name__ == "__main__":
    sys.exit(main())
