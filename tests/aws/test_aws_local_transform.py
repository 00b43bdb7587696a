"""Batch transform end to end through the local runtime: scripts/batch_transform.py (or plain
boto3) -> moto -> scripts/localsm/transform.py -> our image in Docker -> .out objects in moto's S3.

The runtime's own behaviour is checked byte for byte against a reference: the serving package on
127.0.0.1 with the job's batch settings answers the same mini-batches (cut with the same
scripts/localsm/batch_split.py), and the .out object must be those answers assembled as AWS
documents (AssembleWith=Line: a newline after each answer; None: nothing). Whether the container
keeps one output line per input line is asserted separately (N lines in -> N lines out).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from transform_stack import TransformStack, missing_prerequisite, start, stop

from scripts.localsm.batch_split import mini_batches

pytestmark = [pytest.mark.aws, pytest.mark.docker, pytest.mark.slow]
WORDS = [
    *("space", "orbit", "shuttle", "launch", "nasa", "planet", "moon", "rocket", "hockey"),
    *("game", "team", "season", "goal", "player", "church", "god", "faith", "bible", "belief"),
    *("car", "engine", "wheel", "dealer", "price", "windows", "driver", "disk", "software"),
]
JSONL = "application/jsonlines"
ADVERTISED = {"MaxConcurrentTransforms": 36, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformStack]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("la-transform")
    try:
        started = start(work)
        started.bucket("bt-out")  # SageMaker writes into an existing bucket
        yield started
    finally:
        stop(work)


@pytest.fixture(scope="module")
def model(stack: TransformStack, tiny_model_dir: Path) -> str:
    return stack.model("tiny-classify", tiny_model_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})


def documents(count: int, words: int = 60, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + f" #{i}" for i in range(count)]


def jsonl(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)


def labels(body: bytes) -> list[str]:
    return [json.loads(line)["label"] for line in body.splitlines() if line.strip()]


def transform(stack: TransformStack, job: str, model: str, *argv: str) -> dict[str, Any]:
    base = ["--model", model, "--job-name", job, "--content-type", JSONL, "--accept", JSONL]
    stack.script("batch_transform", *base, *argv)
    return dict(stack.client("sagemaker").describe_transform_job(TransformJobName=job))


def reference(
    server_factory: Any, model_dir: Path, desc: dict[str, Any], data: bytes
) -> tuple[list[bytes], list[bytes]]:
    """The job's mini-batches and what our server, with the job's batch settings, answers."""
    env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(desc["MaxPayloadInMB"]),
           "SAGEMAKER_BATCH_STRATEGY": desc["BatchStrategy"].upper().replace("RECORD", "_RECORD"),
           "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(desc["MaxConcurrentTransforms"])}  # fmt: skip
    server = server_factory(model_dir, "classify", env=env)
    split = desc["TransformInput"]["SplitType"]
    bodies = [
        b for _, b in mini_batches(data, split, desc["BatchStrategy"], desc["MaxPayloadInMB"])
    ]
    answers = []
    for body in bodies:
        resp = server.post(body, desc["TransformInput"]["ContentType"], JSONL)
        assert resp.status_code == 200, resp.text
        answers.append(resp.content)
    return bodies, answers


# -- MultiRecord, SplitType=Line, AssembleWith=Line ---------------------------------------------
@pytest.fixture(scope="module")
def multi(stack: TransformStack, model: str) -> dict[str, Any]:
    texts = documents(3000)  # ~1.2 MB: two mini-batches of at most 1 MiB
    data = jsonl(texts)
    stack.put("s3://bt-in/multi/docs.jsonl", data)
    args = ["--input", "s3://bt-in/multi/", "--output", "s3://bt-out/multi/"]
    desc = transform(stack, "bt-multi", model, *args, "--max-payload-mb", "1",
                     "--max-concurrent", "2")  # fmt: skip
    return {"texts": texts, "data": data, "desc": desc, "out": stack.get(
        "s3://bt-out/multi/docs.jsonl.out"), "log": stack.data_log("bt-multi")}  # fmt: skip


def test_multi_record_output_is_each_answer_plus_a_newline(
    multi: dict[str, Any], server_factory: Any, tiny_model_dir: Path
) -> None:
    desc = multi["desc"]
    assert desc["TransformJobStatus"] == "Completed"
    assert (desc["BatchStrategy"], desc["MaxPayloadInMB"], desc["MaxConcurrentTransforms"]) == (
        "MultiRecord", 1, 2,
    )  # fmt: skip
    bodies, answers = reference(server_factory, tiny_model_dir, desc, multi["data"])
    assert len(bodies) == 2 and b"".join(bodies) == multi["data"]
    assert multi["out"] == b"".join(answer + b"\n" for answer in answers)
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in multi["log"]
    assert "2 requests, at most 2 at once" in multi["log"]  # both mini-batches ran in parallel


def test_multi_record_labels_equal_realtime_answers(
    multi: dict[str, Any], server_factory: Any, tiny_model_dir: Path
) -> None:
    realtime = server_factory(tiny_model_dir, "classify")
    resp = realtime.post(multi["data"], JSONL, JSONL)
    assert resp.status_code == 200
    assert labels(multi["out"]) == labels(resp.content)
    assert len(labels(multi["out"])) == len(multi["texts"])


def test_multi_record_n_lines_in_n_lines_out(multi: dict[str, Any]) -> None:
    assert len(multi["out"].splitlines()) == len(multi["texts"])


# -- SingleRecord, SplitType=Line, AssembleWith=Line --------------------------------------------
@pytest.fixture(scope="module")
def single(stack: TransformStack, model: str) -> dict[str, Any]:
    texts = documents(40, seed=5)
    stack.put("s3://bt-in/single/docs.jsonl", jsonl(texts))
    args = ["--input", "s3://bt-in/single/", "--output", "s3://bt-out/single/"]
    desc = transform(stack, "bt-single", model, *args, "--strategy", "SingleRecord",
                     "--max-concurrent", "4")  # fmt: skip
    out = stack.get("s3://bt-out/single/docs.jsonl.out")
    return {"texts": texts, "desc": desc, "out": out, "log": stack.data_log("bt-single")}


def test_single_record_sends_one_record_per_request(
    single: dict[str, Any], server_factory: Any, tiny_model_dir: Path
) -> None:
    assert single["desc"]["TransformJobStatus"] == "Completed"
    bodies, answers = reference(
        server_factory, tiny_model_dir, single["desc"], jsonl(single["texts"])
    )
    assert len(bodies) == len(single["texts"])
    assert single["out"] == b"".join(answer + b"\n" for answer in answers)
    assert "40 requests, at most 4 at once" in single["log"]
    realtime = server_factory(tiny_model_dir, "classify")
    assert labels(single["out"]) == labels(
        realtime.post(jsonl(single["texts"]), JSONL, JSONL).content
    )


def test_single_record_n_lines_in_n_lines_out(single: dict[str, Any]) -> None:
    assert len(single["out"].splitlines()) == len(single["texts"])


# -- SplitType=None, AssembleWith=None, two objects ---------------------------------------------
def test_split_none_assemble_none_is_the_answer_to_each_whole_object(
    stack: TransformStack, model: str, server_factory: Any, tiny_model_dir: Path
) -> None:
    first, second = jsonl(documents(30, seed=7)), jsonl(documents(12, seed=8))
    stack.put("s3://bt-in/none/a.jsonl", first)
    stack.put("s3://bt-in/none/sub/b.jsonl", second)
    args = ["--input", "s3://bt-in/none/", "--output", "s3://bt-out/none"]
    desc = transform(stack, "bt-none", model, *args, "--split-type", "None",
                     "--assemble-with", "None", "--max-concurrent", "1")  # fmt: skip
    assert desc["TransformJobStatus"] == "Completed"
    assert stack.keys("s3://bt-out/none/") == ["none/a.jsonl.out", "none/sub/b.jsonl.out"]
    for data, key in ((first, "a.jsonl.out"), (second, "sub/b.jsonl.out")):
        _, answers = reference(server_factory, tiny_model_dir, desc, data)
        assert stack.get(f"s3://bt-out/none/{key}") == answers[0]


def test_the_container_runs_in_batch_mode_with_the_request_settings(
    stack: TransformStack, model: str
) -> None:
    """text/plain holds one document per line only when SAGEMAKER_BATCH=true reached it; limits the
    request leaves unset come from /execution-parameters (the model sets 2 workers)."""
    stack.put("s3://bt-in/plain/docs.txt", "\n".join(documents(5, seed=9)).encode())
    stack.client("sagemaker").create_transform_job(
        TransformJobName="bt-plain",
        ModelName=model,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bt-in/plain/"}
            },
            "ContentType": "text/plain",
        },
        TransformOutput={"S3OutputPath": "s3://bt-out/plain/", "Accept": JSONL},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    desc = stack.wait("bt-plain")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert "MaxPayloadInMB" not in desc and "MaxConcurrentTransforms" not in desc
    assert len(labels(stack.get("s3://bt-out/plain/docs.txt.out"))) == 5
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD" in (
        stack.data_log("bt-plain")
    )


# -- failures ----------------------------------------------------------------------------------
def test_a_4xx_fails_the_job_with_the_containers_message_after_the_retries(
    stack: TransformStack, model: str
) -> None:
    stack.put("s3://bt-in/bad/docs.jsonl", jsonl(documents(3)))
    done = stack.run("batch_transform", "--model", model, "--job-name", "bt-415",
                     "--input", "s3://bt-in/bad/", "--output", "s3://bt-out/bad/",
                     "--content-type", "application/x-unknown")  # fmt: skip
    assert done.returncode != 0
    desc = stack.client("sagemaker").describe_transform_job(TransformJobName="bt-415")
    reason = desc["FailureReason"]
    assert desc["TransformJobStatus"] == "Failed"
    assert reason.startswith("ClientError: See job logs for more information")
    assert "bt-in/bad/docs.jsonl: ClientError: 415" in reason
    assert "application/x-unknown" in reason  # the container's own message
    assert reason in done.stderr  # batch_transform.py prints it
    assert stack.keys("s3://bt-out/bad/") == []  # nothing for a failed object
    log = stack.data_log("bt-415")
    assert "attempt 4: 415" in log and "attempt 5" not in log  # InvocationsMaxRetries: 3


def test_a_record_over_max_payload_fails_the_job(stack: TransformStack, model: str) -> None:
    big = json.dumps({"text": " ".join(["orbit"] * 220_000)}).encode() + b"\n"  # > 1 MiB
    stack.put("s3://bt-in/big/docs.jsonl", jsonl(documents(2)) + big)
    done = stack.run("batch_transform", "--model", model, "--job-name", "bt-big",
                     "--input", "s3://bt-in/big/", "--output", "s3://bt-out/big/",
                     "--content-type", JSONL, "--max-payload-mb", "1")  # fmt: skip
    assert done.returncode != 0
    desc = stack.client("sagemaker").describe_transform_job(TransformJobName="bt-big")
    assert desc["TransformJobStatus"] == "Failed"
    assert f"record 3 is {len(big)} bytes, over MaxPayloadInMB=1" in desc["FailureReason"]


def test_stop_transform_job(stack: TransformStack, model: str) -> None:
    stack.put("s3://bt-in/stop/docs.jsonl", jsonl(documents(3000, words=10)))
    stack.script(
        "batch_transform",
        "--model",
        model,
        "--job-name",
        "bt-stop",
        "--no-wait",
        "--input",
        "s3://bt-in/stop/",
        "--output",
        "s3://bt-out/stop/",
        "--content-type",
        JSONL,
        "--strategy",
        "SingleRecord",
        "--max-concurrent",
        "1",
    )
    sm = stack.client("sagemaker")
    assert sm.describe_transform_job(TransformJobName="bt-stop")["TransformJobStatus"] == (
        "InProgress"
    )
    sm.stop_transform_job(TransformJobName="bt-stop")
    assert stack.wait("bt-stop")["TransformJobStatus"] == "Stopped"
    assert stack.keys("s3://bt-out/stop/") == []


# -- MaxConcurrentTransforms x MaxPayloadInMB <= 100 --------------------------------------------
def test_the_runtime_rejects_a_job_over_the_payload_rule(stack: TransformStack, model: str) -> None:
    sm = stack.client("sagemaker")
    request = {
        "TransformJobName": "bt-rule",
        "ModelName": model,
        "MaxConcurrentTransforms": 36,
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bt-in/x/"}}
        },
        "TransformOutput": {"S3OutputPath": "s3://bt-out/x/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    with pytest.raises(ClientError) as caught:
        sm.create_transform_job(**request)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "36 * 6 = 216" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="ValidationException"):
        sm.create_transform_job(**{**request, "MaxConcurrentTransforms": 1, "MaxPayloadInMB": 101})


def test_batch_transform_refuses_given_values_over_the_rule(stack: TransformStack) -> None:
    argv = ["--model", "m", "--input", "s3://a/b/", "--output", "s3://a/c/"]
    done = stack.run("batch_transform", *argv, "--max-concurrent", "36", "--max-payload-mb", "6")
    assert done.returncode == 2
    assert "MaxConcurrentTransforms 36 x MaxPayloadInMB 6 = 216 MB" in done.stderr
    assert "lower --max-concurrent or --max-payload-mb" in done.stderr


class Advertises(BaseHTTPRequestHandler):
    """A container's /execution-parameters on a 36-vCPU instance: 36 workers x 6 MB."""

    def do_GET(self) -> None:
        body = json.dumps(ADVERTISED).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_advertised_values_over_the_rule_keep_the_payload_and_lower_the_concurrency(
    stack: TransformStack, model: str
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Advertises)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stack.put("s3://bt-in/adv/docs.jsonl", jsonl(documents(5)))
        done = stack.run("batch_transform", "--model", model, "--job-name", "bt-adv",
                         "--input", "s3://bt-in/adv/", "--output", "s3://bt-out/adv/",
                         "--content-type", JSONL, "--execution-parameters-url", url)  # fmt: skip
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert "= 216 MB; CreateTransformJob allows at most 100: using MaxConcurrentTransforms 16" in (
        done.stderr
    )
    desc = stack.client("sagemaker").describe_transform_job(TransformJobName="bt-adv")
    assert (desc["MaxConcurrentTransforms"], desc["MaxPayloadInMB"]) == (16, 6)
    assert desc["TransformJobStatus"] == "Completed"


# -- the whole 20 Newsgroups test split as one job -----------------------------------------------
@pytest.fixture(scope="module")
def news(stack: TransformStack, real_trained: tuple[Path, Path]) -> dict[str, Any]:
    """7,532 test posts as JSON Lines, one job (MultiRecord, 6 MB, 2 at once), and the same
    posts through a realtime endpoint of the same model on the same runtime."""
    import os
    import time
    import urllib.request

    from serving.data import load_splits

    model_dir = real_trained[0]
    shared = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
    test = load_splits(str(shared / "data" / "20news-bydate.tar.gz")).test
    assert test is not None
    data = jsonl(test.texts)
    stack.put("s3://bt-news/in/test.jsonl", data)
    # One test post has 160,616 characters: the defaults classify it (a document may be as
    # long as the body), in the batch job and on the realtime endpoint alike.
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    name = stack.model("news-classify", model_dir, env)
    started = time.monotonic()
    desc = transform(stack, "bt-news", name, "--input", "s3://bt-news/in/",
                     "--output", "s3://bt-news/out/", "--max-concurrent", "2")  # fmt: skip
    script_seconds = time.monotonic() - started
    job_seconds = (desc["TransformEndTime"] - desc["CreationTime"]).total_seconds()
    out = stack.get("s3://bt-news/out/test.jsonl.out")

    sm = stack.client("sagemaker")
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
               "InstanceType": "ml.m5.large"}  # fmt: skip
    sm.create_endpoint_config(EndpointConfigName="news-rt", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName="news-rt", EndpointConfigName="news-rt")
    runtime_url = stack.env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{runtime_url}/_local/endpoints", timeout=10) as resp:
            states = {d["endpoint"]: d["state"] for d in json.loads(resp.read())}
        if states.get("news-rt") in ("InService", "Failed"):
            break
        time.sleep(1)
    assert states.get("news-rt") == "InService", states
    import boto3

    rt = boto3.client("sagemaker-runtime", endpoint_url=runtime_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    realtime: list[str] = []
    for first in range(0, len(test.texts), 500):
        body = jsonl(test.texts[first : first + 500])
        answer = rt.invoke_endpoint(EndpointName="news-rt", Body=body, ContentType=JSONL,
                                    Accept=JSONL)["Body"].read()  # fmt: skip
        realtime += labels(answer)
    print(f"\n20news batch transform: {len(test.texts)} posts, {len(data)} bytes, job "
          f"{job_seconds:.1f} s (script incl. polling {script_seconds:.1f} s)")  # fmt: skip
    return {"test": test, "out": out, "desc": desc, "realtime": realtime,
            "metrics": json.loads((model_dir / "metrics.json").read_text()),
            "log": stack.data_log("bt-news"), "seconds": job_seconds}  # fmt: skip


@pytest.mark.data
def test_20news_labels_equal_realtime_and_the_models_accuracy(news: dict[str, Any]) -> None:
    test, got = news["test"], labels(news["out"])
    assert news["desc"]["TransformJobStatus"] == "Completed"
    assert len(got) == len(test.texts) == 7532
    assert got == news["realtime"]
    truth = [test.label_names[i] for i in test.labels]
    correct = sum(g == t for g, t in zip(got, truth, strict=True))
    assert correct / len(truth) == pytest.approx(news["metrics"]["accuracy"], abs=1e-12)
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD" in news["log"]


@pytest.mark.data
def test_20news_n_lines_in_n_lines_out(news: dict[str, Any]) -> None:
    assert len(news["out"].splitlines()) == len(news["test"].texts)
