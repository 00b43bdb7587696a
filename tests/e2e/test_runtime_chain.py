"""The local runtime's data plane without Docker: fake containers (small HTTP servers on
127.0.0.1) behind scripts/localsm/runtime.py's real handler, called with boto3's sagemaker-runtime
client as a user would. What SageMaker does that these pin (contract §1, §2): the chaining of
Content-Type / Accept, CustomAttributes, Direct mode, the error shapes botocore reads
(ModelError with OriginalStatusCode, OriginalMessage, LogStreamArn; ValidationError; 413), the
6 MB client limit and the 5 MB limit between containers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e_stack import REPO  # noqa: F401  (puts the repository on sys.path)

from scripts.localsm.deploy import Box, DeployError, Deployment, local_image
from scripts.localsm.endpoints import validation
from scripts.localsm.runtime import Handler

Behaviour = Callable[[bytes, dict[str, str]], tuple[int, bytes, dict[str, str]]]


class FakeContainer:
    """A /invocations server that records what it got and answers with ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((headers, body))
                status, out, extra = behaviour(body, headers)
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def echo_as(content_type: str) -> Behaviour:
    return lambda body, headers: (200, body + b"|", {"Content-Type": content_type})


class FakeEndpoints:
    def __init__(self) -> None:
        self.deps: dict[str, Deployment] = {}

    def serving(self, name: str) -> Deployment:
        if name not in self.deps:
            raise validation(f"Endpoint {name} of account 123456789012 not found.")
        return self.deps[name]

    def all(self) -> list[Deployment]:
        return list(self.deps.values())


@pytest.fixture
def runtime() -> Iterator[tuple[FakeEndpoints, Any, Callable[..., list[FakeContainer]]]]:
    import boto3

    endpoints = FakeEndpoints()
    Handler.endpoints = endpoints
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fakes: list[FakeContainer] = []

    def deploy(name: str, *behaviours: Behaviour) -> list[FakeContainer]:
        made = [FakeContainer(b) for b in behaviours]
        fakes.extend(made)
        dep = Deployment(name, f"{name}-cfg", "AllTraffic", f"{name}-model", state="InService")
        hosts = ["primary"] if len(made) == 1 else [f"c{i}" for i in range(len(made))]
        dep.boxes = [
            Box(h, "img", 9000, f.port, f"smlr-{h}") for h, f in zip(hosts, made, strict=True)
        ]
        dep.ready.set()
        endpoints.deps[name] = dep
        return made

    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield endpoints, client, deploy
    server.shutdown()
    for fake in fakes:
        fake.server.shutdown()


def test_serial_chain_passes_types_and_accept_like_sagemaker(runtime: Any) -> None:
    _, client, deploy = runtime

    def finish(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        extra = {"Content-Type": "application/jsonlines", "X-Amzn-SageMaker-Custom-Attributes": "x"}
        return 200, body + b"end", extra

    first, middle, last = deploy(
        "pipe", echo_as("application/x-recordio-protobuf"), echo_as("application/json"), finish
    )
    answer = client.invoke_endpoint(
        EndpointName="pipe",
        Body=b"doc",
        ContentType="text/plain",
        Accept="application/jsonlines",
        CustomAttributes="top_k=3",
        InferenceId="req-1",
    )
    assert answer["Body"].read() == b"doc||end"
    assert answer["ContentType"] == "application/jsonlines"
    assert answer["CustomAttributes"] == "x"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    got = [fake.requests[0][0] for fake in (first, middle, last)]
    assert [h["content-type"] for h in got] == [
        "text/plain",
        "application/x-recordio-protobuf",
        "application/json",
    ]
    assert [h["accept"] for h in got] == ["*/*", "*/*", "application/jsonlines"]
    assert all(h["x-amzn-sagemaker-custom-attributes"] == "top_k=3" for h in got)
    assert all(h["x-amzn-sagemaker-inference-id"] == "req-1" for h in got)


def test_container_error_is_a_model_error_botocore_reads(runtime: Any) -> None:
    _, client, deploy = runtime

    def refuse(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        return 415, b'{"message":"no such type"}', {"Content-Type": "application/json"}

    _, never = deploy("pipe", refuse, echo_as("text/csv"))
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="pipe", Body=b"x", ContentType="text/plain")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 415
    assert error["OriginalMessage"] == '{"message":"no such type"}'
    assert error["Error"]["Message"].startswith("Received client error (415) from c0 with message")
    assert error["LogStreamArn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/pipe"
        ":log-stream:AllTraffic/i-local/c0"
    )
    assert never.requests == []


def test_five_megabytes_between_containers_is_a_model_error(runtime: Any) -> None:
    _, client, deploy = runtime

    def inflate(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        return 200, b"0" * (5 * 1024 * 1024 + 1), {"Content-Type": "text/csv"}

    _, never = deploy("pipe", inflate, echo_as("application/json"))
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="pipe", Body=b"x", ContentType="text/plain")
    message = caught.value.response["Error"]["Message"]
    assert "the request payload from c0 to c1 is 5242881 bytes" in message
    assert "which has exceeded the maximum limit of 5 MB" in message
    assert never.requests == []


def test_client_limits_and_validation(runtime: Any) -> None:
    from botocore.exceptions import ClientError

    _, client, deploy = runtime
    (only,) = deploy("single", echo_as("application/json"))
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(EndpointName="single", Body=b"x" * (6 * 1024 * 1024 + 1))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "HTTP content length exceeded 6291456 bytes." in str(caught.value)
    assert only.requests == []
    exactly = client.invoke_endpoint(EndpointName="single", Body=b"x" * (6 * 1024 * 1024))
    assert len(exactly["Body"].read()) == 6 * 1024 * 1024 + 1
    with pytest.raises(client.exceptions.ValidationError, match="not found"):
        client.invoke_endpoint(EndpointName="missing", Body=b"x")


def test_target_container_hostname_calls_one_container(runtime: Any) -> None:
    _, client, deploy = runtime
    first, second = deploy("pipe", echo_as("text/csv"), echo_as("application/json"))
    answer = client.invoke_endpoint(
        EndpointName="pipe", Body=b"q", ContentType="text/plain", TargetContainerHostname="c1"
    )
    assert answer["Body"].read() == b"q|"
    assert first.requests == [] and len(second.requests) == 1
    assert second.requests[0][0]["content-type"] == "text/plain"
    with pytest.raises(client.exceptions.ValidationError, match="c0, c1"):
        client.invoke_endpoint(EndpointName="pipe", Body=b"q", TargetContainerHostname="nope")


def test_ecr_uris_map_to_the_local_registry() -> None:
    registry = "127.0.0.1:5000"
    ntm = "382416733822.dkr.ecr.us-east-1.amazonaws.com/ntm:1"
    assert local_image(ntm, registry) == "127.0.0.1:5000/ntm:1"
    cn = "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/knn:1"
    assert local_image(cn, registry) == "127.0.0.1:5000/knn:1"
    own = "127.0.0.1:5000/sm-text-pipeline:abc"
    assert local_image(own, registry) == own
    with pytest.raises(DeployError, match="neither an ECR URI"):
        local_image("docker.io/library/python:3.11", registry)


def test_local_training_refuses_a_remote_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from scripts import builtin_training

    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    argv = ["all", "--local", "--region", "us-east-1", "--output", "s3://b/p"]
    code = builtin_training.main([*argv, "--train", "s3://b/t/", "--auxiliary", "s3://b/a/"])
    assert code == 2
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    with pytest.raises(SystemExit) as caught:  # --local belongs to `all` only
        builtin_training.main(["ntm", "--local", "--output", "s3://b/p"])
    assert caught.value.code == 2


def test_stage_accept_option_sets_each_container() -> None:
    from scripts import containers

    accept = containers.parse_accept(["ntm=application/jsonlines", "knn=text/csv"])
    boxes = containers.recommender_containers(
        "i", "s3://b/m", "n", "s3://b/n", "k", "s3://b/k", accept
    )
    env = {b["ContainerHostname"]: b["Environment"][containers.ENV_ACCEPT] for b in boxes}
    assert env["ntm"] == "application/jsonlines" and env["knn"] == "text/csv"
    assert env["ntm-features"] == containers.ACCEPT["ntm-features"]
    with pytest.raises(ValueError, match="STAGE=TYPE"):
        containers.parse_accept(["classify=text/csv"])


def test_data_capture_records_the_pipeline_request_and_final_answer(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint whose config captures: each answered request becomes one capture record
    (localsm/capture.py) with the client's request and the last container's answer, which
    scripts/capture.py reads back; an error answer is not captured."""
    import json

    from scripts import capture as reader
    from scripts.endpoint_config import CAPTURE_CSV_TYPES, CAPTURE_JSON_TYPES

    endpoints, client, deploy = runtime
    puts: list[dict[str, Any]] = []

    class S3:
        def put_object(self, **params: Any) -> dict[str, Any]:
            puts.append(params)
            return {}

    monkeypatch.setattr(Handler, "aws", staticmethod(lambda service: S3()), raising=False)
    answer = json.dumps({"predictions": [{"label": "sci.space", "probability": 0.9}]}).encode()
    deploy("cap", echo_as("application/x-recordio-protobuf"),
           lambda body, headers: (200, answer, {"Content-Type": "application/json"}))
    endpoints.deps["cap"].capture = {
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://cap-bucket/dc",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": CAPTURE_CSV_TYPES,
                                     "JsonContentTypes": CAPTURE_JSON_TYPES},
    }
    got = client.invoke_endpoint(EndpointName="cap", Body=b"the shuttle", ContentType="text/plain",
                                 InferenceId="req-9")
    assert got["Body"].read() == answer
    deadline = 50
    while not puts and deadline:  # written after the answer is sent
        threading.Event().wait(0.1)
        deadline -= 1
    (put,) = puts
    assert put["Bucket"] == "cap-bucket" and put["Key"].startswith("dc/cap/AllTraffic/")
    record = json.loads(put["Body"])
    data = record["captureData"]
    assert reader.documents(data["endpointInput"]) == ["the shuttle"]
    assert reader.labels(data["endpointOutput"]) == ["sci.space"]
    assert record["eventMetadata"]["inferenceId"] == "req-9"
    deploy("cap-fail", lambda body, headers: (400, b'{"error": "bad"}',
                                              {"Content-Type": "application/json"}))
    endpoints.deps["cap-fail"].capture = endpoints.deps["cap"].capture
    with pytest.raises(client.exceptions.ModelError):
        client.invoke_endpoint(EndpointName="cap-fail", Body=b"x", ContentType="text/plain")
    threading.Event().wait(0.5)
    assert len(puts) == 1
