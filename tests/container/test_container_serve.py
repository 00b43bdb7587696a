"""``docker run IMAGE serve`` as SageMaker hosting runs it, with a trained model mounted."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import requests

from tests.container.conftest import logs_of

pytestmark = pytest.mark.docker

DOC = (
    "From: pilot@example.edu\nSubject: shuttle launch orbit\n\n"
    "The nasa shuttle launch put the satellite in orbit; the rocket mission went to the moon.\n"
)

# Start-up time (first /ping after `docker run`) is a benchmark figure: bench/run.py.


def proc_table(served: Any) -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of every process in the container, read from /proc inside
    it (the image has no ps)."""
    script = (
        "import json, os\n"
        "rows = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        stat = open(f'/proc/{pid}/stat').read()\n"
        "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
        "    except OSError:\n"
        "        continue\n"
        "    ppid = int(stat.rsplit(')', 1)[1].split()[1])\n"
        "    rows.append((int(pid), ppid, cmd.decode(errors='replace').strip()))\n"
        "print(json.dumps(rows))\n"
    )
    code, out = served.exec("python", "-c", script)
    assert code == 0, out
    return [tuple(row) for row in json.loads(out)]


def workers_of_pid1(served: Any) -> list[tuple[int, int, str]]:
    """gunicorn's workers: PID 1's children other than the nginx front end."""
    return [row for row in proc_table(served) if row[1] == 1 and not row[2].startswith("nginx")]


def test_ping_and_classify(serve: Callable[..., Any]) -> None:
    served = serve()
    print(f"first /ping 200 after {served.seconds_to_ping:.2f} s")
    response = served.post(DOC, "text/plain")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    prediction = response.json()["predictions"][0]
    assert prediction["label"] == "sci.space"
    # The entry point gave the server glibc's huge-page tunable (serving/heap.py), so it did not
    # start itself again; its start-up line says so.
    code, out = served.exec("python", "-c", "print(open('/proc/1/environ').read())")
    assert code == 0 and "\0GLIBC_TUNABLES=glibc.malloc.hugetlb=1\0" in f"\0{out}", out
    assert "heap: huge pages asked (glibc.malloc.hugetlb=1" in logs_of(served.container)


def test_each_stage_serves(serve: Callable[..., Any], model_dir: Any) -> None:
    """SERVING_STAGE selects the stage; each answers its own kind of request."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    num_topics = manifest["ntm"]["num_topics"]

    classify = serve(env={"SERVING_STAGE": "classify"})
    r = classify.post(DOC, "text/plain", "application/json")
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == "sci.space"

    ntm = serve(env={"SERVING_STAGE": "ntm-features"})
    r = ntm.post(DOC, "text/plain", "application/json")
    assert r.status_code == 200, r.text
    instance = r.json()["instances"][0]
    assert instance, r.text
    r = ntm.post(DOC, "text/plain", "application/x-recordio-protobuf")
    assert r.status_code == 200, r.text
    assert r.content[:4] == bytes.fromhex("0a23d7ce")  # RecordIO magic, little-endian
    # application/x-npy (the SageMaker SDK's NumpyDeserializer) through the image's
    # sagemaker-inference encoder; numpy's own np.load is the reference reader.
    r = ntm.post(DOC, "text/plain", "application/x-npy")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-npy", r.text
    counts = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert counts.dtype == np.float32 and counts.shape[0] == 1 and counts.sum() > 0

    adapter = serve(env={"SERVING_STAGE": "topics-to-knn"})
    weights = [1.0 / num_topics] * num_topics
    body = json.dumps({"predictions": [{"topic_weights": weights}]})
    r = adapter.post(body, "application/json", "text/csv")
    assert r.status_code == 200, r.text
    row = r.text.strip().split(",")
    assert len(row) == num_topics
    buffer = io.BytesIO()
    np.save(buffer, np.full((2, num_topics), 2.0))  # the SDK's NumpySerializer
    r = adapter.post(buffer.getvalue(), "application/x-npy", "application/x-npy")
    assert r.status_code == 200, r.text
    unit = np.load(io.BytesIO(r.content), allow_pickle=False)
    np.testing.assert_allclose(unit, np.full((2, num_topics), num_topics ** -0.5), rtol=1e-6)

    recommend = serve(env={"SERVING_STAGE": "recommend"})
    body = json.dumps(
        {
            "predictions": [
                {"predicted_label": 0.0, "labels": [0, 1, 2], "distances": [0.1, 0.2, 0.3]}
            ]
        }
    )
    r = recommend.post(body, "application/json", "application/json")
    assert r.status_code == 200, r.text
    recommendations = r.json()["predictions"][0]["recommendations"]
    assert recommendations and {"id", "title", "newsgroup", "score"} <= set(recommendations[0])


def test_bind_to_port_and_worker_count(serve: Callable[..., Any]) -> None:
    """SAGEMAKER_BIND_TO_PORT moves the server (and the HEALTHCHECK follows it);
    SAGEMAKER_MODEL_SERVER_WORKERS sets how many gunicorn workers run."""
    served = serve(
        env={"SAGEMAKER_BIND_TO_PORT": "9091", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, port=9091
    )
    assert served.post(DOC).status_code == 200

    table = proc_table(served)
    pid1 = [cmd for pid, _, cmd in table if pid == 1]
    # Exec-form ENTRYPOINT + exec in the entry point: gunicorn's arbiter is PID 1 (signals).
    assert pid1 and "serving.serve" in pid1[0], table
    deadline = time.monotonic() + 30
    while len(workers_of_pid1(served)) != 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers_of_pid1(served)) == 3, proc_table(served)

    # Nothing listens on 8080 inside; the image's HEALTHCHECK reads the same variable.
    code, _ = served.exec(
        "python",
        "-c",
        "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/ping', timeout=2)",
    )
    assert code != 0
    health = served.container.image.attrs["Config"]["Healthcheck"]["Test"]
    assert health[0] == "CMD"
    code, out = served.exec(*health[1:])
    assert code == 0, out


def test_default_workers_is_cpu_count(serve: Callable[..., Any]) -> None:
    served = serve(env={"SAGEMAKER_MODEL_SERVER_WORKERS": ""})
    code, out = served.exec("python", "-c", "import os; print(os.cpu_count())")
    assert code == 0
    expected = int(out.strip())
    deadline = time.monotonic() + 30
    while len(workers_of_pid1(served)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers_of_pid1(served)) == expected


def test_docker_stop_is_prompt(serve: Callable[..., Any]) -> None:
    """SageMaker stops with SIGTERM and kills after 30 s: gunicorn must exit well before."""
    served = serve(env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    assert served.post(DOC).status_code == 200
    started = time.monotonic()
    served.container.stop(timeout=30)
    seconds = time.monotonic() - started
    served.container.reload()
    state = served.container.attrs["State"]
    print(f"docker stop took {seconds:.2f} s, exit code {state['ExitCode']}")
    assert seconds < 30
    assert state["ExitCode"] != 137, "killed (SIGKILL), not stopped by SIGTERM"


@pytest.mark.parametrize("user", ["1000:1000", "4242:4242"])
def test_serves_as_non_root(serve: Callable[..., Any], user: str) -> None:
    """The image's `app` user (1000), and an arbitrary uid without a passwd entry."""
    served = serve(user=user)
    code, out = served.exec("id", "-u")
    assert code == 0 and out.strip() == user.split(":")[0]
    table = proc_table(served)
    assert [cmd for pid, _, cmd in table if pid == 1]
    response = served.post(DOC)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "sci.space"


def test_invocations_error_is_4xx_not_crash(serve: Callable[..., Any]) -> None:
    served = serve()
    response = served.post(b"\xff\xfe not json", "application/json")
    assert 400 <= response.status_code < 500
    assert requests.get(f"{served.url}/ping", timeout=2).status_code == 200
