"""Drive the image with the SageMaker Python SDK v2 in local mode (runs in the SDK's own venv).

``python tests/sdk/sdk_client.py SCENARIO SPEC.json RESULT.json``: SPEC holds the scenario's
arguments, RESULT receives what the SDK returned (the pytest side, tests/sdk/test_sdk_local.py,
asserts on it). The SDK is a client nobody here wrote; this file only calls its public API.

Nothing leaves the machine:
- ``LocalSession`` with ``local_code``, ``file://`` data and outputs, fake long-lived credentials
  (no session token, so the SDK never asks the EC2 metadata service) and a fake region;
- telemetry is opted out in the SDK's own config (``SageMaker.PythonSDK.Modules.TelemetryOptOut``,
  sagemaker/telemetry/telemetry_logging.py); with the fake region its emitter would stop anyway
  (it validates the region before sending);
- a socket guard refuses any name lookup or connection other than loopback and Unix sockets (the
  Docker daemon, the container's published port) and records the attempt; the result carries the
  list, which the tests require to be empty. (Verified: ``Transformer.transform(logs=True)``
  makes local mode ask CloudWatch Logs, ``logs.<region>.amazonaws.com``: the tests pass
  ``logs=False``.)
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

REGION = "eu-local-1"  # not an AWS region: nothing could be addressed there
ROLE = "arn:aws:iam::000000000000:role/local-sdk-tests"
BLOCKED: list[str] = []


def _local(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return name == "localhost"


def _guard_sockets() -> None:
    """Refuse (and record) name lookups and connections that would leave the machine."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            BLOCKED.append(f"connect {address[0]}:{address[1]}")
            raise OSError(f"sdk tests: no connection to {address[0]} (nothing leaves the host)")
        return connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _local(host):
            BLOCKED.append(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, f"sdk tests: no lookup of {host}")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo


def _environment(work: Path) -> None:
    config = work / "sagemaker-config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                      "      TelemetryOptOut: true\n")
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "local-sdk-tests", "AWS_SECRET_ACCESS_KEY": "local-sdk-tests",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config),
    })
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


def _publish_on_loopback() -> None:
    """Local mode publishes the serving port on every interface (compose ``"PORT:8080"``,
    sagemaker/local/image.py ``_create_docker_host``); these tests publish it on 127.0.0.1 only.
    The SDK itself still calls ``http://localhost:PORT``, so nothing else changes."""
    from sagemaker.local.image import _SageMakerContainer

    create = _SageMakerContainer._create_docker_host

    def on_loopback(self: Any, *args: Any, **kwargs: Any) -> dict:
        config = create(self, *args, **kwargs)
        if "ports" in config:
            config["ports"] = [p if p.count(":") > 1 else f"127.0.0.1:{p}"
                               for p in config["ports"]]
        return config

    _SageMakerContainer._create_docker_host = on_loopback  # type: ignore[method-assign]


def _session(work: Path, port: int) -> Any:
    import boto3
    from sagemaker.local import LocalSession

    _publish_on_loopback()

    boto = boto3.Session(region_name=REGION, aws_access_key_id="local-sdk-tests",
                         aws_secret_access_key="local-sdk-tests")
    session = LocalSession(boto_session=boto, sagemaker_config={
        "SchemaVersion": "1.0",
        "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}})
    root = work / "container-root"
    root.mkdir(exist_ok=True)
    session.config = {"local": {"local_code": True, "container_root": str(root),
                                "serving_port": port}}
    return session


# --- scenarios -------------------------------------------------------------------------------


def train(spec: dict, session: Any) -> dict:
    """Estimator(...).fit() with plain, or (with ``framework``) JSON-encoded hyper-parameters
    plus the ``sagemaker_*`` keys the SDK adds in script mode."""
    from sagemaker.estimator import Estimator

    kwargs: dict[str, Any] = {}
    if spec.get("framework"):
        code = Path(spec["work"]) / "code"
        code.mkdir(exist_ok=True)
        (code / "train.py").write_text("# never run: the image trains by itself\n")
        kwargs.update(source_dir=str(code), entry_point="train.py")
    estimator = Estimator(
        image_uri=spec["image"], role=ROLE, instance_count=1, instance_type="local",
        output_path="file://" + spec["output"], hyperparameters=spec["hyperparameters"],
        sagemaker_session=session, **kwargs)
    result: dict[str, Any] = {}
    try:
        estimator.fit({"train": "file://" + spec["train"]}, logs=True)
        result["model_data"] = estimator.model_data
    except Exception as exc:  # the test asserts on the message
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["sent_hyperparameters"] = estimator.hyperparameters()
    return result


def _model(spec: dict, session: Any) -> Any:
    from sagemaker.model import Model

    return Model(image_uri=spec["image"], model_data="file://" + spec["model_data"], role=ROLE,
                 env=spec.get("env") or {}, sagemaker_session=session)


def predict(spec: dict, session: Any) -> dict:
    """Model(...).deploy('local') and a Predictor per serializer/deserializer pair."""
    from sagemaker import deserializers as d
    from sagemaker import serializers as s
    from sagemaker.amazon.common import read_recordio
    from sagemaker.amazon.record_pb2 import Record
    from sagemaker.predictor import Predictor

    model = _model(spec, session)
    model.deploy(initial_instance_count=1, instance_type="local",
                 endpoint_name=spec["endpoint"])
    docs = spec["docs"]
    out: dict[str, Any] = {}
    try:
        def predictor(serializer: Any, deserializer: Any) -> Predictor:
            return Predictor(spec["endpoint"], sagemaker_session=session,
                             serializer=serializer, deserializer=deserializer)

        if spec.get("stage", "classify") == "classify":
            out["json"] = predictor(s.JSONSerializer(), d.JSONDeserializer()).predict(
                {"instances": docs})
            out["csv"] = predictor(s.CSVSerializer(), d.CSVDeserializer()).predict(
                [[doc] for doc in docs])
            out["plain"] = predictor(s.IdentitySerializer("text/plain"),
                                     d.JSONDeserializer()).predict(docs[0].encode())
            jsonlines = predictor(s.JSONLinesSerializer(), d.JSONLinesDeserializer())
            out["jsonlines"] = jsonlines.predict([{"text": doc} for doc in docs])
            out["custom_attributes"] = jsonlines.predict(
                [{"text": docs[0]}], custom_attributes="top_k=4")
            raw = predictor(s.JSONSerializer(), d.BytesDeserializer())
            response = session.sagemaker_runtime_client.invoke_endpoint(
                EndpointName=spec["endpoint"], Body=json.dumps(docs[:1]).encode(),
                ContentType="application/json", Accept="application/json",
                InferenceId="sdk-inference-42")
            out["inference_id_body"] = response["Body"].read().decode()
            out["inference_id_header"] = response["Body"].headers.get("X-Request-Id")
            bad = session.sagemaker_runtime_client.invoke_endpoint(
                EndpointName=spec["endpoint"], Body=b"", ContentType="application/json",
                Accept="application/json", InferenceId="sdk-inference-43")
            out["error_body"] = bad["Body"].read().decode()
            out["raw_predict"] = raw.predict(docs[:1], inference_id="sdk-inference-44").decode()
        else:  # ntm-features: RecordIO-protobuf read with the SDK's own helpers
            rio = predictor(s.JSONLinesSerializer(), d.BytesDeserializer())
            body = rio.predict([{"text": doc} for doc in docs],
                               initial_args={"Accept": "application/x-recordio-protobuf"})
            records = []
            for payload in read_recordio(io.BytesIO(body)):
                record = Record()
                record.ParseFromString(payload)
                values = record.features["values"].float32_tensor
                records.append({"keys": list(values.keys), "values": list(values.values),
                                "shape": list(values.shape)})
            out["records"] = records
            out["dense_rows"] = [
                [float(v) for v in row] for row in
                predictor(s.JSONLinesSerializer(), d.CSVDeserializer()).predict(
                    [{"text": doc} for doc in docs], initial_args={"Accept": "text/csv"})]
    finally:
        session.delete_endpoint(spec["endpoint"])
    return out


def transform(spec: dict, session: Any) -> dict:
    """A Transformer job over a file: SplitType=Line, AssembleWith=Line, the given strategy."""
    model = _model(spec, session)
    transformer = model.transformer(
        instance_count=1, instance_type="local", strategy=spec["strategy"],
        assemble_with="Line", output_path="file://" + spec["output"], accept=spec["accept"],
        max_payload=spec.get("max_payload"))
    transformer.transform("file://" + spec["input"], content_type=spec["content_type"],
                          split_type="Line", logs=False, wait=True)
    outputs = sorted(str(p) for p in Path(spec["output"]).rglob("*.out"))
    return {"outputs": outputs, "job": transformer.latest_transform_job.job_name}


SCENARIOS = {"train": train, "predict": predict, "transform": transform}


def main(argv: list[str]) -> int:
    scenario, spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    _guard_sockets()
    with tempfile.TemporaryDirectory(dir=spec.get("work")) as tmp:
        work = Path(tmp)
        _environment(work)
        result: dict[str, Any] = {}
        try:
            result = SCENARIOS[scenario](spec, _session(work, int(spec["port"])))
        except Exception as exc:  # reported to the test
            result = {"crash": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        result["blocked_connections"] = BLOCKED
        Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
