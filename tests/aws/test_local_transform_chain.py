"""scripts/localsm/transform_http.py: the request chain, against two HTTP servers on 127.0.0.1.

A pipeline model in batch transform: the job's ContentType to the first container, each response
and its Content-Type to the next, the job's Accept to the last only; a non-2xx or no answer is a
CallFailed naming the container; MaxPayloadInMB=0 sends the body chunked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scripts.localsm.deploy import Box
from scripts.localsm.transform_http import CallFailed, chain


def make_handler(seen: list[dict[str, Any]], status: int, out_type: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = b""
                while size := int(self.rfile.readline().strip(), 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"headers": dict(self.headers), "body": body})
            answer = (
                body.upper()
                + b"|"
                + self.server.server_address[1].to_bytes(2, "big").hex().encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", out_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def servers() -> Iterator[list[tuple[Box, list[dict[str, Any]]]]]:
    started = []
    for hostname, status, out_type in (("first", 200, "text/csv"), ("second", 200, "x/final")):
        seen: list[dict[str, Any]] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen, status, out_type))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        started.append((server, Box(hostname, "img", 8080, host_port=port), seen))
    yield [(box, seen) for _, box, seen in started]
    for server, _, _ in started:
        server.shutdown()


def test_pipeline_chain_passes_types_and_accept_like_sagemaker(servers: list[Any]) -> None:
    (first, seen1), (second, seen2) = servers
    out = chain([first, second], b"a\nb\n", "application/jsonlines", "application/json", 5)
    assert seen1[0]["body"] == b"a\nb\n"
    assert seen1[0]["headers"]["Content-Type"] == "application/jsonlines"
    assert seen1[0]["headers"]["Accept"] == "*/*"
    assert seen2[0]["headers"]["Content-Type"] == "text/csv"  # the first one's answer type
    assert seen2[0]["headers"]["Accept"] == "application/json"
    assert seen2[0]["body"].startswith(b"A\nB\n|")
    assert out.startswith(b"A\nB\n|") and out.count(b"|") == 2


def test_chunked_body_when_the_payload_is_unlimited(servers: list[Any]) -> None:
    (first, seen1), _ = servers
    out = chain([first], b"x" * 70_000, "text/plain", None, 5, chunked=True)
    assert seen1[0]["headers"].get("Transfer-Encoding") == "chunked"
    assert "Accept" not in seen1[0]["headers"]
    assert out.startswith(b"X" * 70_000)


def test_a_failing_container_is_named(servers: list[Any]) -> None:
    seen: list[dict[str, Any]] = []
    bad = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen, 415, "application/json"))
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    try:
        box = Box("picky", "img", 8080, host_port=bad.server_address[1])
        (first, _), _ = servers
        with pytest.raises(CallFailed) as caught:
            chain([first, box], b"doc", "text/plain", None, 5)
        assert (caught.value.status, caught.value.hostname) == (415, "picky")
        assert caught.value.message.startswith("DOC|")
    finally:
        bad.shutdown()
    closed = Box("gone", "img", 8080, host_port=bad.server_address[1])
    with pytest.raises(CallFailed) as caught:
        chain([closed], b"doc", "text/plain", None, 2)
    assert caught.value.status == 0 and caught.value.hostname == "gone"


def test_data_processing_filters_are_refused_not_ignored(tmp_path: Any) -> None:
    from threading import Event

    from scripts.localsm.transform import TransformJob

    class NoDocker:
        work = tmp_path

        def teardown(self, dep: Any) -> None:
            pass

    desc = {
        "TransformJobName": "j",
        "ModelName": "m",
        "DataProcessing": {"InputFilter": "$.text", "JoinSource": "Input", "OutputFilter": "$"},
    }
    status, reason = TransformJob(NoDocker(), desc, Event()).run()  # type: ignore[arg-type]
    assert status == "Failed"
    assert "does not implement DataProcessing InputFilter, JoinSource" in reason
