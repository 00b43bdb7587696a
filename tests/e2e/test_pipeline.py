"""The whole recommendation pipeline, offline (issue: "The whole recommendation pipeline").

Through the local SageMaker runtime, with ``scripts/invoke.py`` as the client:

- the classifier endpoint labels sample documents correctly;
- the 5-container recommender (ntm-features -> NTM -> topics-to-knn -> k-NN -> recommend, NTM and
  k-NN being the stand-ins, which answer as AWS documents: L2 distances ascending, COSINE
  similarities ascending) recommends, for 200 test documents, training articles of the query's
  newsgroup in >= 58% of the top 10 on average (precision@10, printed), fewer than 5% of the
  lists repeat a thread, and a training post's text recommends itself first;
- the deploy-time self-check (scripts/selfcheck.py) fails a recommender whose metric is wrong or
  whose k-NN lost the verbose Accept, and `update` rolls back to the previous config; a COSINE
  k-NN told to recommend as COSINE recommends what L2 does;
- every content type the chain allows between stages works, each hop checked in the runtime's
  trace: into NTM CSV, RecordIO, JSON and JSON Lines; out of NTM JSON, JSON Lines and RecordIO;
  into k-NN CSV, JSON, JSON Lines and RecordIO; out of k-NN JSON, JSON Lines, RecordIO;
- without topics-to-knn the chain fails with the ModelError the formats predict (k-NN cannot read
  NTM's output, which is why the adapter exists);
- a 7 MB request is refused as SageMaker refuses it, and a 5 MB+ body between two containers
  fails with SageMaker's ModelError;
- a classifier created with --data-capture has its requests recorded, and scripts/capture.py
  lists them with their labels.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import Any

import pytest
from e2e_stack import DATA_TGZ, Stack

from serving.neighbours import thread_key

pytestmark = [pytest.mark.docker, pytest.mark.aws, pytest.mark.data, pytest.mark.slow]

RECORDIO = "application/x-recordio-protobuf"
SAMPLES = {
    "sci.space": "The shuttle launch was delayed again; NASA says the orbiter will reach orbit "
    "next week and the astronauts will repair the satellite.",
    "rec.sport.hockey": "What a game last night! The Penguins beat the Bruins 5-3 in overtime and "
    "Lemieux scored twice on the power play. Playoffs start next week in the NHL.",
    "sci.med": "My doctor says the patient should take this medication for the infection, but "
    "what are the side effects? Are there clinical studies on the treatment of the disease?",
    "comp.windows.x": "How do I set the X11 display resources for xterm? My Motif widget "
    "crashes the X server when the window manager starts under OpenWindows.",
    "talk.politics.guns": "The second amendment protects the right to bear arms; gun control "
    "laws and the ban on firearms will not stop criminals with handguns.",
}
# (ntm-features, ntm, topics-to-knn, knn) Accept, and the client's Content-Type / Accept.
VARIANTS: dict[str, dict[str, Any]] = {
    "fmt-csv": {
        "accept": ("text/csv", "application/jsonlines", "application/json",
                   "application/jsonlines; verbose=true"),
        "client": ("text/csv", "application/jsonlines"),
    },
    "fmt-json": {
        "accept": ("application/json", RECORDIO, "application/jsonlines",
                   f"{RECORDIO}; verbose=true"),
        "client": ("text/plain", "application/json"),
    },
    "fmt-jsonl": {
        "accept": ("application/jsonlines", "application/json", RECORDIO,
                   "application/json; verbose=true"),
        "client": ("application/jsonlines", "application/json"),
    },
}  # fmt: skip
STAGES = ("ntm-features", "ntm", "topics-to-knn", "knn")


@pytest.fixture(scope="module")
def test_docs() -> list[tuple[str, str]]:
    """200 test documents (every n-th of the bydate test split, so every newsgroup), with group."""
    from serving.data import load_splits

    test = load_splits(str(DATA_TGZ)).test
    assert test is not None
    step = len(test) // 200
    picked = range(0, step * 200, step)
    return [(test.texts[i], test.label_names[int(test.labels[i])]) for i in picked]


def bare(media_type: str | None) -> str:
    """The media type without parameters (k-NN answers "verbose" content without the flag)."""
    return (media_type or "").split(";")[0].strip()


def jsonl_requests(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"instances": [t]}).encode() + b"\n" for t in texts)


def responses(stdout: bytes) -> list[Any]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def recommendations(doc: Any) -> list[dict[str, Any]]:
    if "predictions" in doc:
        doc = doc["predictions"][0]
    return list(doc["recommendations"])


def test_classifier_labels_samples(stack: Stack, test_docs: list[tuple[str, str]]) -> None:
    texts = list(SAMPLES.values()) + [text for text, _ in test_docs]
    started = time.monotonic()
    out = stack.invoke("sm-text-classifier", "--jsonl", "-", stdin=jsonl_requests(texts))
    stack.timings["classify_205"] = round(time.monotonic() - started, 1)
    labels = [doc["predictions"][0]["label"] for doc in responses(out.stdout)]
    assert len(labels) == len(texts)
    assert labels[: len(SAMPLES)] == list(SAMPLES)
    accuracy = sum(
        got == want for got, (_, want) in zip(labels[len(SAMPLES) :], test_docs, strict=True)
    ) / len(test_docs)
    print(f"\nclassifier accuracy on {len(test_docs)} test documents: {accuracy:.2f}")
    assert accuracy >= 0.75


def test_recommendations_share_the_newsgroup(
    stack: Stack, test_docs: list[tuple[str, str]]
) -> None:
    started = time.monotonic()
    body = jsonl_requests([text for text, _ in test_docs])
    out = stack.invoke("sm-text-recommender", "--jsonl", "-", stdin=body)
    stack.timings["recommend_200"] = round(time.monotonic() - started, 1)
    docs = responses(out.stdout)
    assert len(docs) == len(test_docs)
    precisions, repeating, short = [], 0, []
    for doc, (_, group) in zip(docs, test_docs, strict=True):
        recs = recommendations(doc)
        # One per thread among k-NN's k = 50 neighbours: a list whose neighbours run out of
        # threads is shorter (docs/pipeline.md, "How k is chosen": 0.02 % of the training
        # posts need more than 50). Which test posts do changes with the machine: none of these
        # 200 in the CI runs up to 2026-12-02; one (7 threads) on the machine of 2026-12-03,
        # with the code of stop 21 as well (its image and stand-ins: the same data and seeds,
        # so the floating point of the stand-ins' NMF and k-NN differs by CPU).
        assert 1 <= len(recs) <= 10
        if len(recs) < 10:
            short.append(len(recs))
        assert all({"id", "title", "newsgroup", "score"} <= set(r) for r in recs)
        scores = [r["score"] for r in recs]
        assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
        precisions.append(sum(r["newsgroup"] == group for r in recs) / 10)
        threads = [thread_key(r["title"]) for r in recs]
        repeating += len(set(threads)) < len(threads)
    p_at_10 = sum(precisions) / len(precisions)
    stack.timings["precision_at_10"] = round(p_at_10, 3)
    stack.timings["lists_repeating_a_thread"] = repeating
    print(f"\nprecision@10 over {len(precisions)} test documents: {p_at_10:.3f}; "
          f"{repeating} lists repeat a thread; shorter than 10: {short}")
    assert p_at_10 >= 0.58
    assert len(short) <= 0.02 * len(docs) and min(short, default=10) >= 5, short
    assert repeating < 0.05 * len(docs)
    hops = stack.chain("sm-text-recommender")  # the default formats, hop by hop
    assert [h["hostname"] for h in hops] == [*STAGES, "recommend"]
    assert [bare(h["content_type"]) for h in hops] == [
        "application/json", RECORDIO, "application/json", "text/csv", "application/json",
    ]  # fmt: skip
    assert [h["accept"] for h in hops] == ["*/*"] * 4 + ["application/json"]


def test_training_posts_recommend_themselves_first(stack: Stack) -> None:
    from serving.data import load_splits

    train = load_splits(str(DATA_TGZ)).train
    step = len(train) // 25
    picked = list(range(0, step * 25, step))
    body = jsonl_requests([train.texts[i] for i in picked])
    docs = responses(stack.invoke("sm-text-recommender", "--jsonl", "-", stdin=body).stdout)
    firsts = [recommendations(doc)[0] for doc in docs]
    assert [f["id"] for f in firsts] == [train.ids[i] for i in picked]
    assert all(f["score"] > 0.999 for f in firsts)


def create_checked(stack: Stack, name: str, *extra: str) -> Any:
    """create-pipeline NAME with the stack's inputs; returns the finished process."""
    return stack.script("endpoints", "create-pipeline", "--name", name, *stack.pipeline_args(),
                        *extra, check=False, timeout=600)


def test_self_check_fails_a_wrong_metric(stack: Stack) -> None:
    """recommend told COSINE (similarities, larger first) reads L2 distances upside down: the
    query's own document comes last, and the self-check says so."""
    done = create_checked(stack, "wrong-metric", "--knn-metric", "COSINE")
    message = done.stderr.decode()
    stack.script("endpoints", "delete", "--name", "wrong-metric", check=False)
    assert done.returncode == 1, message
    assert "self-check of wrong-metric FAILED" in message
    print(f"\nself-check message: {message.splitlines()[-1][:600]}")
    assert "is not among the 10" in message and "not first" in message  # the farthest first
    assert "index_metric COSINE (SERVING_KNN_METRIC)" in message


def test_self_check_fails_a_lost_verbose_accept(stack: Stack) -> None:
    done = create_checked(stack, "not-verbose", "--stage-accept", "knn=application/json")
    message = done.stderr.decode()
    stack.script("endpoints", "delete", "--name", "not-verbose", check=False)
    assert done.returncode == 1, message
    assert "ignored SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT" in message


def test_update_rolls_back_when_the_self_check_fails(stack: Stack) -> None:
    import boto3

    created = outputs_of(create_checked(stack, "roll-back"))
    sm = boto3.client("sagemaker", endpoint_url=stack.env["AWS_ENDPOINT_URL"],
                      region_name=stack.env["AWS_REGION"],
                      aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"])
    good = created["ENDPOINT_CONFIG_NAME"]
    done = stack.script("endpoints", "update", "--name", "roll-back",
                        "--env", "SERVING_KNN_METRIC=INNER_PRODUCT", check=False, timeout=600)
    message = done.stderr.decode()
    assert done.returncode == 1, message
    assert f"Rolled back to {good}" in message and "not first" in message
    assert sm.describe_endpoint(EndpointName="roll-back")["EndpointConfigName"] == good
    text = SAMPLES["sci.med"]
    recs = recommendations(json.loads(stack.invoke("roll-back",
                                                   stdin=client_body("application/json", text)
                                                   ).stdout))
    assert len(recs) == 10 and recs[0]["score"] >= recs[-1]["score"]
    skipped = stack.script("endpoints", "update", "--name", "roll-back", "--no-verify",
                           "--env", "SERVING_KNN_METRIC=INNER_PRODUCT", timeout=600)
    assert outputs_of(skipped)["RESULT"] == "updated"
    stack.script("endpoints", "delete", "--name", "roll-back", check=False)


def test_cosine_knn_told_cosine_recommends_like_l2(stack: Stack, tmp_path: Any) -> None:
    """A k-NN trained with index_metric COSINE answers similarities, nearest LAST (as AWS
    documents it); recommend told the metric (the job's, or --knn-metric) orders it right."""
    import boto3
    import numpy as np

    from scripts.aws_common import parse_s3_uri
    from standins.train import train_knn

    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL"],
                      region_name=stack.env["AWS_REGION"],
                      aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"])
    bucket, prefix = parse_s3_uri(stack.out["KNN_TRAIN_S3"])
    key = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"][0]["Key"]
    rows = np.loadtxt(io.StringIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()),
                      delimiter=",", ndmin=2)
    train_knn(rows[:, 1:], rows[:, 0], 50, "COSINE", tmp_path / "knn")
    s3.upload_file(str(tmp_path / "knn" / "model.tar.gz"), bucket, "cosine-knn/model.tar.gz")
    args = [a for a in stack.pipeline_args()]
    at = args.index("--knn-training-job")
    del args[at:at + 2]
    stack.script("endpoints", "create-pipeline", "--name", "cosine-knn", *args,
                 "--knn-model-data", f"s3://{bucket}/cosine-knn/model.tar.gz",
                 "--knn-metric", "COSINE", timeout=600)
    body = client_body("application/json", SAMPLES["comp.windows.x"])
    cosine = recommendations(json.loads(stack.invoke("cosine-knn", stdin=body).stdout))
    l2 = recommendations(json.loads(stack.invoke("sm-text-recommender", stdin=body).stdout))
    assert [r["id"] for r in cosine] == [r["id"] for r in l2]
    for a, b in zip(cosine, l2, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    stack.script("endpoints", "delete", "--name", "cosine-knn", check=False)


def outputs_of(done: Any) -> dict[str, str]:
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return dict(line.split("=", 1) for line in done.stdout.decode().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def variants(stack: Stack) -> tuple[str, ...]:
    """The recommender again with other SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT per container."""
    started = time.monotonic()
    for name, variant in VARIANTS.items():
        accept = [
            f"--stage-accept={stage}={t}"
            for stage, t in zip(STAGES, variant["accept"], strict=True)
        ]
        stack.script(
            "endpoints", "create-pipeline", "--name", name, *stack.pipeline_args(), *accept
        )
    stack.wait_in_service(*VARIANTS)
    stack.timings["deploy_3_variants"] = round(time.monotonic() - started, 1)
    return tuple(VARIANTS)


def client_body(content_type: str, text: str) -> bytes:
    if content_type == "text/csv":
        buf = io.StringIO()
        csv.writer(buf).writerow([text])
        return buf.getvalue().encode()
    if content_type == "text/plain":
        return text.encode()
    if content_type == "application/jsonlines":
        return json.dumps({"text": text}).encode() + b"\n"
    return json.dumps({"instances": [text]}).encode()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_content_type_between_stages(stack: Stack, variants: Any, name: str) -> None:
    text = SAMPLES["sci.space"]
    default = stack.invoke("sm-text-recommender", stdin=client_body("application/json", text))
    expected = [r["id"] for r in recommendations(json.loads(default.stdout))]
    content_type, accept = VARIANTS[name]["client"]
    body = client_body(content_type, text)
    out = stack.invoke(name, "--content-type", content_type, "--accept", accept, stdin=body)
    got = [r["id"] for r in recommendations(responses(out.stdout)[0])]
    assert got[:3] == expected[:3]
    assert len(set(got) & set(expected)) >= 8
    hops = stack.chain(name)
    sent = [bare(h["content_type"]) for h in hops]
    answered = [bare(h["answer_type"]) for h in hops]
    accepts = [bare(t) for t in VARIANTS[name]["accept"]]
    assert sent == [content_type, *accepts]
    assert answered == [*accepts, accept]
    assert [h["status"] for h in hops] == [200] * 5


def test_without_the_adapter_knn_cannot_read_ntm(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTM answers {"predictions":[{"topic_weights":...}]}; k-NN reads {"instances":[...]}."""
    from scripts import containers, sm_resources
    from scripts.aws_common import Aws
    from scripts.builtin_images import image_uri

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in stack.env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    aws = Aws()
    o = stack.out
    boxes = containers.recommender_containers(
        o["IMAGE_URI"], o["MODEL_DATA_URL"],
        image_uri("ntm", aws.region), o["NTM_MODEL_DATA"],
        image_uri("knn", aws.region), o["KNN_MODEL_DATA"],
    )  # fmt: skip
    boxes = [b for b in boxes if b["ContainerHostname"] != "topics-to-knn"]
    definition = sm_resources.model_definition(stack.env["SAGEMAKER_ROLE_ARN"], boxes, "Serial")
    model = sm_resources.ensure_model(aws, "no-adapter", definition)
    variant = sm_resources.variant(model, "ml.m5.large", 1)
    config = sm_resources.ensure_endpoint_config(aws, "no-adapter", [variant])
    sm_resources.deploy(aws, "no-adapter", config, wait=True, keep_old=False)
    stack.wait_in_service("no-adapter")
    body = client_body("application/json", SAMPLES["sci.space"])
    out = stack.invoke("no-adapter", stdin=body, check=False)
    message = out.stderr.decode()
    assert out.returncode == 1, message
    assert "the model container answered 422" in message
    assert "predictions" in message  # what k-NN refused: NTM's {"predictions": ...}
    assert "log-stream:AllTraffic/i-local/knn" in message
    client = stack.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="no-adapter", Body=body, ContentType="application/json")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 422
    assert error["Error"]["Message"].startswith("Received client error (422) from knn with message")
    assert error["LogStreamArn"].endswith(":log-stream:AllTraffic/i-local/knn")
    hops = stack.chain("no-adapter")
    assert [h["hostname"] for h in hops] == ["ntm-features", "ntm", "knn"]
    assert hops[2]["content_type"] == "application/json"  # NTM's own output, as it is
    assert hops[2]["status"] == 422


def test_seven_megabyte_request_is_refused(stack: Stack) -> None:
    from botocore.exceptions import ClientError

    big = b"space shuttle orbit " * (7 * 1024 * 1024 // 20)
    out = stack.invoke("sm-text-classifier", "--content-type", "text/plain", stdin=big, check=False)
    assert out.returncode == 2
    assert b"SageMaker takes at most 6291456" in out.stderr
    client = stack.runtime_client()
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(
            EndpointName="sm-text-classifier", Body=big, ContentType="text/plain"
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Message"] == "HTTP content length exceeded 6291456 bytes."
    small = client.invoke_endpoint(
        EndpointName="sm-text-classifier",
        Body=SAMPLES["sci.med"].encode(),
        ContentType="text/plain",
    )
    assert json.loads(small["Body"].read())["predictions"][0]["label"] == "sci.med"


def test_over_five_megabytes_between_containers(stack: Stack, variants: Any) -> None:
    """ntm-features answers dense CSV ("0," per vocabulary word) in fmt-csv: a few thousand
    short texts make a small request but a body over 5 MB for NTM."""
    texts = 5_500_000 // (2 * int(stack.out["FEATURE_DIM"])) + 1
    body = json.dumps({"instances": ["space shuttle orbit"] * texts}).encode()
    assert len(body) < 1024 * 1024
    out = stack.invoke("fmt-csv", stdin=body, check=False)
    message = out.stderr.decode()
    assert out.returncode == 1, message
    assert "the request payload from ntm-features to ntm is" in message
    assert "which has exceeded the maximum limit of 5 MB" in message


def test_custom_attributes_and_direct_invocation(stack: Stack) -> None:
    """CustomAttributes reach every container (our choice: UNCONFIRMED on SageMaker), so the
    recommend stage's top_k applies; TargetContainerHostname calls one container alone."""
    body = client_body("application/json", SAMPLES["rec.sport.hockey"])
    full = recommendations(json.loads(stack.invoke("sm-text-recommender", stdin=body).stdout))
    out = stack.invoke("sm-text-recommender", "--custom-attributes", "top_k=3", stdin=body)
    recs = recommendations(json.loads(out.stdout))
    assert [r["id"] for r in recs] == [r["id"] for r in full[:3]]
    assert [h["hostname"] for h in stack.chain("sm-text-recommender")][-1] == "recommend"
    out = stack.invoke(
        "sm-text-recommender", "--target-container", "ntm-features", "--accept", "text/csv",
        stdin=body,
    )  # fmt: skip
    row = out.stdout.decode().strip().split(",")
    assert len(row) == 2000 and any(float(v) > 0 for v in row)
    assert [h["hostname"] for h in stack.chain("sm-text-recommender")] == ["ntm-features"]


def test_data_capture_lists_what_was_asked(stack: Stack) -> None:
    """create-classifier --data-capture: the local runtime records each answered request in
    SageMaker's capture format in (moto's) S3, and scripts/capture.py lists the requests with
    the labels the endpoint gave (the documents in full with --json)."""
    bucket = stack.out["MODEL_DATA_URL"].split("/")[2]
    dest = f"s3://{bucket}/datacapture"
    name = "sm-text-capture"
    stack.step("create_capture", "endpoints", "create-classifier", "--name", name,
               "--image", stack.out["IMAGE_URI"], "--model-data", stack.out["MODEL_DATA_URL"],
               "--data-capture", dest, "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1")
    try:
        stack.wait_in_service(name)
        space, hockey = SAMPLES["sci.space"], SAMPLES["rec.sport.hockey"]
        stack.invoke(name, "--content-type", "text/plain", stdin=space.encode())
        body = json.dumps({"instances": [hockey, {"text": SAMPLES["sci.med"]}]}).encode()
        stack.invoke(name, stdin=body)
        listed: list[dict[str, Any]] = []
        for _ in range(50):  # written right after each answer; bounded wait
            out = stack.script("capture", dest, "--endpoint", name, "--json").stdout
            listed = [json.loads(line) for line in out.decode().splitlines()]
            if len(listed) >= 2:
                break
            time.sleep(0.2)
        by_type = {row["input_type"].split(";")[0]: row for row in listed}
        assert len(listed) == 2 and set(by_type) == {"text/plain", "application/json"}
        assert by_type["text/plain"]["documents"] == [space]
        assert by_type["text/plain"]["labels"] == ["sci.space"]
        assert by_type["application/json"]["documents"] == [hockey, SAMPLES["sci.med"]]
        assert by_type["application/json"]["labels"] == ["rec.sport.hockey", "sci.med"]
        text = stack.script("capture", dest, "--chars", "20").stdout.decode()
        assert "labels=sci.space" in text and '"The shuttle launch w…"' in text
    finally:
        stack.script("endpoints", "delete", "--name", name, check=False)
