"""The nginx front end in front of gunicorn (serving.front_end, serving.nginx_conf,
serving.workers): slow and idle clients, truncated and malformed bodies, protocol errors as JSON
with a request id, start-up validation, draining and supervision. Real servers on 127.0.0.1
only; every load is bounded in count and time."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import front_end, nginx_conf
from serving.config import Settings
from tests.conftest import RunningServer, free_port

pytestmark = pytest.mark.slow
DOC = b"Subject: orbit\n\nThe shuttle launch reached orbit and NASA was happy with the rocket."
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


class LoggedServer(RunningServer):
    log_path: Path

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                lines.append({"level": "NOT-JSON", "message": raw.decode(errors="replace")})
        return lines


def start_logged(model_dir: Path, log_path: Path, workers: int = 2,
                 env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> LoggedServer:
    """``python -m serving.serve`` with its stderr in ``log_path`` (INFO), healthy on /ping."""
    port = free_port()
    full_env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
                "SERVING_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
                "SERVING_LOG_LEVEL": "INFO", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "serving.serve"], env=full_env,
                                   stdout=subprocess.DEVNULL, stderr=log, preexec_fn=preexec_fn)
    server = LoggedServer(f"http://127.0.0.1:{port}", process, port)
    server.log_path = log_path
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("the server did not answer /ping in 60 s")


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[LoggedServer]:
    server = start_logged(tiny_model_dir, tmp_path_factory.mktemp("front-end") / "serve.log")
    yield server
    server.stop()


def exchange(port: int, data: bytes, half_close: bool = True, wait: float = 5.0) -> bytes:
    """Send raw bytes, optionally half-close, and read until the server closes (or ``wait``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return status, headers, body


def assert_json_error(response: bytes, status: int, request_id: str | None = None) -> dict:
    got, headers, body = parse(response)
    assert got == status, response[:300]
    assert headers["content-type"] == "application/json"
    payload = orjson.loads(body)
    assert set(payload) == {"error", "message", "request_id"}
    assert headers["x-request-id"] == payload["request_id"]
    if request_id is None:
        assert REQUEST_ID.match(payload["request_id"])
    else:
        assert payload["request_id"] == request_id
    return payload


def post_head(length: int | None = None, chunked: bool = False, extra: bytes = b"") -> bytes:
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/jsonlines\r\n"
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n"
    return head + extra + b"\r\n"


def timed_request(url: str) -> float:
    started = time.perf_counter()
    response = requests.post(f"{url}/invocations", data=DOC, timeout=10,
                             headers={"Content-Type": "text/plain", "Connection": "close"})
    assert response.status_code == 200
    return time.perf_counter() - started


def open_slow_clients(port: int, count: int) -> list[socket.socket]:
    """A third each: headers in progress, a body in progress, an idle connection."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 3 == 0:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHo")
        elif i % 3 == 1:
            sock.sendall(post_head(length=100_000) + b'"NASA')
        sockets.append(sock)
    return sockets


def test_64_slow_and_idle_clients_do_not_delay_a_normal_request(served: LoggedServer) -> None:
    sockets = open_slow_clients(served.port, 64)
    stop = threading.Event()

    def trickle() -> None:  # 1 byte/s on every slow header and slow body, for at most 20 s
        deadline = time.monotonic() + 20
        while not stop.wait(1.0) and time.monotonic() < deadline:
            for i, sock in enumerate(sockets):
                if i % 3 != 2:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"s" if i % 3 == 0 else b"x")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # every worker would now be stuck behind them without the front end
        samples = [timed_request(served.url) for _ in range(30)]
    finally:
        stop.set()
        thread.join(5)
        for sock in sockets:
            sock.close()
    p50, worst = statistics.median(samples) * 1e3, max(samples) * 1e3
    print(f"with 64 slow/idle connections: p50 {p50:.1f} ms, max {worst:.1f} ms")
    assert p50 < 100 and worst < 2000  # generous bounds: the machine is shared


def test_without_front_end_idle_clients_do_block(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The failure the front end removes (so the test above can fail): two idle connections
    hold both sync workers of a SERVING_FRONT_END=none server."""
    server = start_logged(tiny_model_dir, tmp_path / "none.log",
                          env={"SERVING_FRONT_END": "none"})
    try:
        sockets = open_slow_clients(server.port, 3)[2:] + open_slow_clients(server.port, 3)[2:]
        time.sleep(0.5)
        with pytest.raises(requests.Timeout):
            requests.post(f"{server.url}/invocations", data=DOC, timeout=2,
                          headers={"Content-Type": "text/plain"})
        for sock in sockets:
            sock.close()
    finally:
        server.stop()


def test_short_body_is_not_scored(served: LoggedServer) -> None:
    """Content-Length for 100 JSON Lines records, 40 sent, then a half-close: no prediction,
    logged at INFO as a client abort (nginx sends nothing back to a client that left)."""
    records = b"".join(orjson.dumps(f"NASA orbit shuttle {i}") + b"\n" for i in range(100))
    sent = b"".join(records.splitlines(keepends=True)[:40])
    response = exchange(served.port, post_head(length=len(records)) + sent)
    assert b"predictions" not in response
    if response:
        assert_json_error(response, 400)
    time.sleep(0.3)
    aborts = [line for line in served.log_lines() if line.get("error") == "client_closed_request"]
    assert aborts and aborts[-1]["level"] == "INFO" and aborts[-1]["status"] == 400


def test_bad_chunk_size_and_mid_chunk_disconnect(served: LoggedServer) -> None:
    response = exchange(served.port, post_head(chunked=True) + b"zz\r\nhello\r\n0\r\n\r\n")
    assert_json_error(response, 400)
    response = exchange(served.port, post_head(chunked=True) + b"10\r\n\"NAS")
    assert b"predictions" not in response
    if response:
        assert_json_error(response, 400)
    ok = exchange(served.port, post_head(chunked=True) + b"6\r\n\"NASA\"\r\n0\r\n\r\n")
    assert parse(ok)[0] == 200 and b"predictions" in ok  # a valid chunked body is served
    time.sleep(0.3)
    lines = served.log_lines()
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL", "NOT-JSON")]
    assert not any("Traceback" in str(line) for line in lines)


def test_oversize_body_header_and_uri_are_json(served: LoggedServer) -> None:
    too_big = Settings().max_request_bytes + 1
    payload = assert_json_error(exchange(served.port, post_head(length=too_big)), 413)
    assert payload["error"] == "payload_too_large" and str(too_big - 1) in payload["message"]
    assert_json_error(exchange(served.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"), 414)
    big_header = b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert_json_error(exchange(served.port, big_header), 431)
    assert_json_error(exchange(served.port, b"NOT HTTP AT ALL\r\n\r\n"), 400)
    assert_json_error(exchange(served.port, b"GET /ping HTTP/2.0\r\nHost: t\r\n\r\n"), 505)
    unknown_coding = post_head(extra=b"Transfer-Encoding: gzip\r\n")
    assert_json_error(exchange(served.port, unknown_coding), 501)
    many = b"GET /ping HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n"
    assert parse(exchange(served.port, many))[0] == 200  # gunicorn accepts what nginx accepts


def test_trace_405_allows_what_the_app_allows_and_http_0_9_is_not_answered(
        served: LoggedServer) -> None:
    """nginx refuses TRACE itself, with the app's Allow for the path (none for a path the app
    does not have); a request line without a version (HTTP/0.9) is closed without an answer,
    which nginx would otherwise give as a bare body without a status line."""
    for path, allow in (("/invocations", "OPTIONS, POST"), ("/ping?x=1", "GET, HEAD, OPTIONS"),
                        ("/execution-parameters", "GET, HEAD, OPTIONS"), ("/nope", None)):
        trace = exchange(served.port, f"TRACE {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert_json_error(trace, 405)
        assert parse(trace)[1].get("allow") == allow, path
        app_405 = requests.put(f"{served.url}{path}", timeout=10)
        assert app_405.headers.get("Allow") == allow
    assert exchange(served.port, b"GET /ping\r\n", half_close=False) == b""
    assert exchange(served.port, b"POST /invocations\r\n", half_close=False) == b""
    assert parse(exchange(served.port, b"GET /ping HTTP/1.0\r\n\r\n"))[0] == 200


def test_inference_id_is_the_request_id_everywhere(served: LoggedServer) -> None:
    head = post_head(length=10**9, extra=b"X-Amzn-SageMaker-Inference-Id: my-id_1\r\n")
    assert_json_error(exchange(served.port, head), 413, request_id="my-id_1")
    response = requests.post(f"{served.url}/invocations", data=b"", timeout=10, headers={
        "Content-Type": "text/plain", "X-Amzn-SageMaker-Inference-Id": "my-id_2"})
    assert response.status_code == 400 and response.json()["request_id"] == "my-id_2"
    # An id nginx cannot put in JSON verbatim is replaced, by the same id in nginx and the app.
    response = requests.post(f"{served.url}/invocations", data=b"", timeout=10, headers={
        "Content-Type": "text/plain", "X-Amzn-SageMaker-Inference-Id": 'a"b\\c'})
    assert response.status_code == 400 and REQUEST_ID.match(response.json()["request_id"])
    assert response.headers["X-Request-Id"] == response.json()["request_id"]
    internal = exchange(served.port, b"GET /__sm_front_end_error/500 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert assert_json_error(internal, 404)["error"] == "not_found"


def test_only_the_bind_port_is_a_tcp_port(served: LoggedServer) -> None:
    """SAGEMAKER_SAFE_PORT_RANGE is for ports other than SAGEMAKER_BIND_TO_PORT; the server
    opens none: nginx reaches gunicorn over a unix socket."""
    pids = [served.process.pid, *descendants(served.process.pid)]
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.exists() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    assert ports == {served.port}


def descendants(pid: int) -> list[int]:
    found = []
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in (children.read_text().split() if children.exists() else []):
        found += [int(child), *descendants(int(child))]
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for this machine's init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def nginx_master_of(pid: int) -> int:
    for child in descendants(pid):
        comm = Path(f"/proc/{child}/comm").read_text().strip()
        if comm == "nginx" and Path(f"/proc/{child}/stat").read_text().split()[3] == str(pid):
            return child
    raise AssertionError("no nginx child")


def test_sigterm_drains_and_stops_nginx(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "term.log", workers=1)
    nginx = nginx_master_of(server.process.pid)
    body = b"".join(orjson.dumps(DOC.decode() * 10) + b"\n" for _ in range(4000))  # ~1 s
    result: dict[str, int] = {}

    def slow_request() -> None:
        response = requests.post(f"{server.url}/invocations", data=body, timeout=60,
                                 headers={"Content-Type": "application/jsonlines"})
        result["status"] = response.status_code

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.4)
    elapsed = server.terminate_timed()
    thread.join(30)
    assert result.get("status") == 200  # the in-flight request was answered through nginx
    assert elapsed < 30 and server.process.returncode == 0
    assert not alive(nginx)
    assert not [line for line in server.log_lines() if line["level"] == "NOT-JSON"]


def test_sighup_is_ignored_and_sigterm_still_stops_at_once(tiny_model_dir: Path,
                                                           tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "hup.log", workers=1)
    try:
        for _ in range(5):
            timed_request(server.url)  # kept connections to the worker
        workers = descendants(server.process.pid)
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
        assert descendants(server.process.pid) == workers  # no reload, no new workers
        assert server.terminate_timed() < 5
        assert server.process.returncode == 0
    finally:
        server.stop()
    assert any("SIGHUP ignored" in line.get("message", "") for line in server.log_lines())


def test_server_stops_when_nginx_dies(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = start_logged(tiny_model_dir, tmp_path / "kill.log")
    deadline = time.monotonic() + 15  # both workers forked and serving
    while len(descendants(server.process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(4):
        timed_request(server.url)
    workers = descendants(server.process.pid)  # gunicorn's workers, nginx's master and worker
    os.kill(nginx_master_of(server.process.pid), signal.SIGKILL)
    try:
        server.process.wait(30)
    finally:
        server.stop()
    assert server.process.returncode == 4
    assert not [pid for pid in workers if alive(pid)]
    assert any("nginx (the front end) exited" in line.get("message", "")
               for line in server.log_lines())


def test_nginx_does_not_outlive_a_killed_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) gives the server no chance to stop nginx: nginx's parent-death
    signal does, so no orphan keeps the port."""
    server = start_logged(tiny_model_dir, tmp_path / "sigkill.log", workers=1)
    nginx = nginx_master_of(server.process.pid)
    nginx_workers = descendants(nginx)
    assert nginx_workers
    server.process.kill()
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while (alive(nginx) or any(alive(pid) for pid in nginx_workers)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in (nginx, *nginx_workers) if alive(pid)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", server.port))


@pytest.mark.parametrize("front_end", ["nginx", "none"])
def test_workers_do_not_outlive_a_killed_master(tiny_model_dir: Path, tmp_path: Path,
                                                front_end: str) -> None:
    """gunicorn's workers notice a dead master only between waits (up to half the worker
    timeout, here 300 s); their parent-death signal stops them at once, so none keeps
    answering on the port."""
    server = start_logged(tiny_model_dir, tmp_path / f"kill-{front_end}.log", workers=2,
                          env={"SERVING_FRONT_END": front_end,
                               "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600"})
    deadline = time.monotonic() + 15
    while len(descendants(server.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    timed_request(server.url)
    everything = descendants(server.process.pid)
    server.process.kill()
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in everything if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/ping", timeout=2)


def test_an_answer_cut_off_by_the_graceful_timeout_is_logged_as_json(tiny_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    """A request still running when SERVING_GRACEFUL_TIMEOUT ends gets no answer; nginx's log
    line for it says status 0, error no_answer, at ERROR, in valid JSON (nginx's own $status
    is "000", which is not a JSON number)."""
    server = start_logged(tiny_model_dir, tmp_path / "cut.log", workers=1, env={
        **TIMEOUT_ENV, "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120", "SERVING_GRACEFUL_TIMEOUT": "1",
        "SAGEMAKER_BATCH": "true"})
    body = b"orbit shuttle launch moon\n" * 800_000  # ~21 MB, seconds of work
    outcome: list[object] = []

    def post() -> None:
        try:
            outcome.append(requests.post(f"{server.url}/invocations", data=body, timeout=60,
                                         headers={"Content-Type": "text/plain",
                                                  "Accept": "text/csv"}).status_code)
        except requests.ConnectionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    thread.join(60)
    lines = server.log_lines()
    assert not [line for line in lines if line["level"] == "NOT-JSON"]
    if outcome == [200]:
        pytest.skip("the request finished within the graceful timeout on this machine")
    cut = [line for line in lines if line.get("logger") == "serving.front_end"
           and line.get("status") == 0]
    assert cut and cut[0]["error"] == "no_answer" and cut[0]["level"] == "ERROR"


# A server whose one worker is aborted by gunicorn's timeout after 1 s (and the limits let a body
# large enough through).
TIMEOUT_ENV = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1",
               "SERVING_MAX_REQUEST_BYTES": str(100 * 1024 * 1024),
               "SERVING_MAX_RECORDS": "10000000", "SERVING_MAX_VALUES": str(1 << 31),
               "SERVING_MAX_RESPONSE_BYTES": str(1 << 30)}


def post_until_timed_out(server: RunningServer, request_id: str = "slow") -> requests.Response:
    """Post a growing body until one request outlives the worker timeout; its answer.

    How long a request takes depends on the machine, so the body grows until one is killed
    (each round aims at 8 s of work, well past the 1 s timeout plus the arbiter's 1 s tick).
    The request ids are ``request_id-<round>``."""
    limit = int(TIMEOUT_ENV["SERVING_MAX_REQUEST_BYTES"])
    line = orjson.dumps(DOC.decode() * 10) + b"\n"
    count = 2000
    for attempt in range(5):
        started = time.monotonic()
        headers = {"Content-Type": "application/jsonlines",
                   "X-Amzn-SageMaker-Inference-Id": f"{request_id}-{attempt}"}
        response = requests.post(f"{server.url}/invocations", data=line * count, timeout=120,
                                 headers=headers)
        elapsed = time.monotonic() - started
        if response.status_code != 200:
            return response
        count = min(limit // len(line), int(count * max(2.0, 8.0 / max(elapsed, 0.01))))
    return response


def test_worker_timeout_answers_json(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A request that outlives the worker timeout gets the JSON error shape, with its id."""
    server = start_logged(tiny_model_dir, tmp_path / "timeout.log", workers=1, env=TIMEOUT_ENV)
    try:
        response = post_until_timed_out(server)
        assert response.status_code in (502, 504), response.text[:200]
        request_id = response.json()["request_id"]
        assert re.fullmatch(r"slow-[0-4]", request_id)
        assert response.headers["X-Request-Id"] == request_id
    finally:
        server.stop()


@pytest.mark.parametrize("args, expected", [
    (["--workers", "0"], "workers"), (["--port", "99999"], "port"), (["--port", "0"], "port"),
    (["--workers", "257"], "workers"),
])
def test_bad_overrides_exit_2_with_one_line(args: list[str], expected: str) -> None:
    result = subprocess.run([sys.executable, "-m", "serving.serve", *args], capture_output=True,
                            text=True, timeout=60,
                            env={**os.environ, "SM_MODEL_DIR": "/nonexistent"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error:") and expected in lines[0]


def test_port_in_use_stops_start_up(tiny_model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "SM_MODEL_DIR": str(tiny_model_dir), "SERVING_HOST": "127.0.0.1",
               "SAGEMAKER_BIND_TO_PORT": str(taken.getsockname()[1]),
               "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SERVING_LOG_LEVEL": "WARNING"}
        result = subprocess.run([sys.executable, "-m", "serving.serve"], capture_output=True,
                                text=True, timeout=60, env=env)
    assert result.returncode == 3
    final = orjson.loads(result.stderr.strip().splitlines()[-1])
    assert final["message"].startswith("cannot serve: nginx could not start")
    assert "Address already in use" in final["message"]


def test_missing_nginx_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front_end.shutil, "which", lambda name: None)
    monkeypatch.setattr(front_end, "NGINX_CANDIDATES", ())
    with pytest.raises(front_end.FrontEndError, match="SERVING_FRONT_END=none"):
        front_end.FrontEnd(Settings())


def test_generated_configuration_passes_nginx_t() -> None:
    for variant in (Settings(), Settings(host="::1", port=9000, keepalive=0, timeout=3600,
                                         max_request_bytes=100 * 1024 * 1024, log_level="ERROR")):
        assert "OK" in front_end.check(variant)
    text = nginx_conf.render(Settings(), Path("/tmp/x"), Path("/tmp/x/s"))
    assert "proxy_request_buffering on;" in text and "client_max_body_size 6291456;" in text


def test_nginx_workers_follow_the_gunicorn_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """One nginx worker per two gunicorn workers, at least one, at most one per CPU."""
    monkeypatch.setattr(nginx_conf.os, "cpu_count", lambda: 16)
    for workers, expected in ((1, 1), (2, 1), (3, 2), (8, 4), (16, 8), (64, 16)):
        assert nginx_conf.worker_processes(Settings(workers=workers)) == expected
        text = nginx_conf.render(Settings(workers=workers), Path("/tmp/x"), Path("/tmp/x/s"))
        assert f"\nworker_processes {expected};\n" in text
    monkeypatch.setattr(nginx_conf.os, "cpu_count", lambda: None)
    assert nginx_conf.worker_processes(Settings(workers=8)) == 1


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Requests cut short, chunked bodies with random (and broken) framing, odd headers."""
    body = draw(st.sampled_from([DOC, b'"NASA orbit"\n' * 5, b"", draw(st.binary(max_size=200))]))
    kind = draw(st.sampled_from(["truncated", "chunked", "chunked-broken", "headers"]))
    if kind == "truncated":
        cut = draw(st.integers(0, len(body)))
        return post_head(length=len(body) + draw(st.integers(1, 1000))) + body[:cut], True
    if kind.startswith("chunked"):
        pieces, rest = [], body
        while rest:
            size = draw(st.integers(1, 50))
            pieces.append(b"%x\r\n" % size + rest[:size] + b"\r\n")  # may claim more than sent
            rest = rest[size:]
        data = b"".join(pieces) + b"0\r\n\r\n"
        if kind == "chunked-broken":
            cut = draw(st.integers(0, len(data)))
            data = data[:cut] + draw(st.sampled_from([b"", b"zz\r\n", b"-1\r\n", b"\r\n\r\n"]))
        return post_head(chunked=True) + data, draw(st.booleans())
    junk = draw(st.binary(min_size=1, max_size=40)).replace(b"\r\n", b"")
    return post_head(length=len(body), extra=b"X-" + junk + b"\r\n") + body, True


def test_fuzzed_truncated_and_chunked_requests_never_5xx(served: LoggedServer) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(request=raw_requests())
    def run(request: tuple[bytes, bool]) -> None:
        data, half_close = request
        response = exchange(served.port, data, half_close=half_close, wait=1.5)
        if not response:
            return  # the client left (or stalled): nothing to answer
        status, headers, body = parse(response)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, response[:300]
        assert headers["content-type"].startswith("application/json")
        if status >= 400:
            assert orjson.loads(body)["request_id"] == headers["x-request-id"]

    run()
    print(f"statuses: {seen}")
    assert not [line for line in served.log_lines() if line["level"] in ("ERROR", "NOT-JSON")]
