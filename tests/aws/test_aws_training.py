"""Artifacts upload and the built-in NTM -> topics -> k-NN flow, against moto's S3 and SageMaker.

moto gaps met here: training and transform jobs are Completed at once and run nothing; a
transform writes no output. The NTM batch output is therefore seeded in S3 (what NTM writes:
one JSON line of topic_weights per record) before the flow reads it; the real jobs, their
FailureReason and the data plane are for a real account or the later local runner.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import outputs

from scripts import builtin_images, builtin_training, knn_data, upload_artifacts
from scripts.aws_common import ScriptError
from scripts.aws_waits import wait_for

pytestmark = pytest.mark.aws


def test_region_tables_are_the_sdks() -> None:
    assert len(builtin_images.NTM_REGISTRIES) == 37
    assert len(builtin_images.KNN_REGISTRIES) == 37
    spot = {
        "us-east-1": "382416733822",
        "us-east-2": "404615174143",
        "us-west-2": "174872318107",
        "eu-west-1": "438346466558",
        "eu-central-1": "664544806723",
        "ap-northeast-1": "351501993468",
    }
    for region, account in spot.items():
        assert builtin_images.image_uri("ntm", region) == (
            f"{account}.dkr.ecr.{region}.amazonaws.com/ntm:1"
        )
        assert builtin_images.image_uri("knn", region).startswith(account)
    for region, account in builtin_images.NTM_REGISTRIES.items():  # every NTM region has k-NN
        knn = builtin_images.image_uri("knn", region)
        assert knn.startswith(f"{account}.dkr.ecr.{region}.") and knn.endswith("/knn:1")
    assert builtin_images.image_uri("knn", "ap-south-2").startswith("628508329040.")
    assert builtin_images.image_uri("ntm", "cn-north-1").endswith(".amazonaws.com.cn/ntm:1")
    with pytest.raises(ScriptError, match="--knn-image"):
        builtin_images.image_uri("knn", "xx-nowhere-1")


def test_knn_data_helpers() -> None:
    assert sorted(["p10", "p2", "p1"], key=knn_data.natural_key) == ["p1", "p2", "p10"]
    record = b"\x0a\x23\xd7\xce" + (5).to_bytes(4, "little") + b"12345" + b"\0\0\0"
    assert knn_data.count_records(record * 3) == 3
    with pytest.raises(knn_data.DataError):
        knn_data.count_records(b"\0" * 8)
    lines = '{"topic_weights": [0.5, 0.5]}\n{"predictions": [{"topic_weights": [1, 0]}]}\n'
    vectors = knn_data.topic_vectors(lines)
    assert vectors == [[0.5, 0.5], [1.0, 0.0]]
    assert knn_data.knn_csv(vectors, 7) == ("7,0.7071068,0.7071068\n8,1,0\n", 2)  # unit rows
    with pytest.raises(knn_data.DataError, match="all topic weights are zero"):
        knn_data.knn_csv([[0.5, 0.5], [0.0, 0.0]])


def test_failure_reason_is_surfaced() -> None:
    states = iter(
        [
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
            {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: feature_dim mismatch"},
        ]
    )

    class Offline:
        dry_run = False

    with pytest.raises(ScriptError, match="ended Failed: ClientError: feature_dim mismatch"):
        wait_for(
            Offline(),  # type: ignore[arg-type]
            "training job t",
            lambda: next(states),
            status_key="TrainingJobStatus",
            done=["Completed"],
            failed=["Failed", "Stopped"],
            poll=0,
        )


def upload(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    code = upload_artifacts.main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return outputs(captured.out)


def test_upload_then_builtin_flow(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    tiny_trained: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    api_calls: list[tuple[str, str, dict[str, Any]]],
) -> None:
    model_dir, output_dir = tiny_trained
    bucket = f"sm-text-{unique}"
    args = ["--model-dir", str(model_dir), "--output-data-dir", str(output_dir)]
    out = upload(capsys, *args, "--bucket", bucket, "--prefix", "p")
    assert out["MODEL_DATA_URL"] == f"s3://{bucket}/p/model/model.tar.gz"
    s3 = boto("s3")
    tarball = s3.get_object(Bucket=bucket, Key="p/model/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        names = set(tar.getnames())
    assert names == {str(p.relative_to(model_dir)) for p in model_dir.rglob("*")}
    ntm_dir = output_dir / "ntm"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="p/data/")["Contents"]}
    assert keys == {f"p/data/{p.relative_to(ntm_dir)}" for p in ntm_dir.rglob("*") if p.is_file()}

    api_calls.clear()  # idempotent: same bytes, nothing sent again
    upload(capsys, *args, "--bucket", bucket, "--prefix", "p")
    assert not [op for _, op, _ in api_calls if op in {"PutObject", "CreateMultipartUpload"}]

    # Seed what NTM's batch transform would write: one topic_weights line per record.
    parts = sorted((ntm_dir / "train").glob("*.pbr"), key=lambda p: knn_data.natural_key(p.name))
    counts = [knn_data.count_records(p.read_bytes()) for p in parts]
    topics = 3
    job = f"topics-{unique}"
    doc = 0
    for part, count in zip(parts, counts, strict=True):
        lines = []
        for _ in range(count):
            lines.append(json.dumps({"topic_weights": [doc / 1000, 0.5, 1.0]}))
            doc += 1
        key = f"p/builtin/topics/{job}/{part.name}.out"
        s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode() + b"\n")

    argv = ["all", "--output", f"s3://{bucket}/p/builtin", "--role", role_arn]
    argv += ["--train", out["NTM_TRAIN_S3"], "--auxiliary", out["NTM_AUXILIARY_S3"]]
    argv += ["--num-topics", str(topics), "--k", "4", "--transform-job-name", job]
    argv += ["--ntm-job-name", f"ntm-{unique}", "--knn-job-name", f"knn-{unique}"]
    code = builtin_training.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = outputs(captured.out)
    documents = sum(counts)
    assert int(result["NUM_DOCUMENTS"]) == documents

    sm = boto("sagemaker")
    ntm = sm.describe_training_job(TrainingJobName=f"ntm-{unique}")
    assert ntm["AlgorithmSpecification"]["TrainingImage"] == (
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/ntm:1"
    )
    vocab = (ntm_dir / "auxiliary" / "vocab.txt").read_text().splitlines()
    assert ntm["HyperParameters"] == {"feature_dim": str(len(vocab)), "num_topics": str(topics)}
    channels = {c["ChannelName"]: c for c in ntm["InputDataConfig"]}
    assert channels["train"]["ContentType"] == "application/x-recordio-protobuf"
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == out["NTM_TRAIN_S3"]
    assert channels["auxiliary"]["DataSource"]["S3DataSource"]["S3Uri"] == out["NTM_AUXILIARY_S3"]

    transform = sm.describe_transform_job(TransformJobName=job)
    assert transform["TransformInput"]["SplitType"] == "RecordIO"
    assert transform["TransformOutput"]["Accept"] == "application/jsonlines"

    knn = sm.describe_training_job(TrainingJobName=f"knn-{unique}")
    assert knn["AlgorithmSpecification"]["TrainingImage"].endswith("/knn:1")
    assert knn["HyperParameters"]["index_metric"] == "L2"
    assert knn["HyperParameters"]["k"] == "4"
    assert knn["HyperParameters"]["feature_dim"] == str(topics)
    assert knn["HyperParameters"]["sample_size"] == str(documents)
    (train,) = knn["InputDataConfig"]
    assert train["ContentType"] == "text/csv; label_size=1"

    csv_key = f"p/builtin/knn-train/{job}/train.csv"
    rows = s3.get_object(Bucket=bucket, Key=csv_key)["Body"].read().decode().splitlines()
    catalog = [json.loads(line) for line in (ntm_dir / "catalog.jsonl").read_text().splitlines()]
    assert [int(r.split(",")[0]) for r in rows] == [c["index"] for c in catalog]
    vectors = [[float(x) for x in r.split(",")[1:]] for r in rows]  # unit vectors (knn_data)
    want = [d / 1000 / math.sqrt((d / 1000) ** 2 + 1.25) for d in range(3)]
    assert [v[0] for v in vectors[:3]] == pytest.approx(want, abs=1e-6)
    assert all(math.hypot(*v) == pytest.approx(1.0, abs=1e-5) for v in vectors)


def test_topic_count_mismatch_is_an_error(
    aws_env: dict[str, str],
    boto: Any,
    role_arn: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = f"sm-text-bad-{unique}"
    s3 = boto("s3")
    s3.create_bucket(Bucket=bucket)
    record = b"\x0a\x23\xd7\xce" + (4).to_bytes(4, "little") + b"abcd"
    s3.put_object(Bucket=bucket, Key="d/train/train_part0.pbr", Body=record * 2)
    s3.put_object(
        Bucket=bucket, Key="o/topics/t/train_part0.pbr.out", Body=b'{"topic_weights":[1]}\n'
    )
    sm = boto("sagemaker")
    sm.create_training_job(
        TrainingJobName=f"ntm-bad-{unique}",
        AlgorithmSpecification={"TrainingImage": "i/ntm:1", "TrainingInputMode": "File"},
        RoleArn=role_arn,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/o/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    argv = ["topics", "--output", f"s3://{bucket}/o", "--train", f"s3://{bucket}/d/train/"]
    argv += ["--ntm-training-job", f"ntm-bad-{unique}", "--transform-job-name", "t"]
    assert builtin_training.main(argv) == 1
    assert "2 records but 1 topic vectors" in capsys.readouterr().err
