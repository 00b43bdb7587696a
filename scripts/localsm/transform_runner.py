"""The local runtime's batch transform: runs the transform jobs moto holds (runtime.py).

On start it attaches to moto (scripts/localsm/moto_transform.py: from then on a new job stays
``InProgress`` instead of moto's instant ``Completed``); every second it lists the jobs that are
``InProgress`` or ``Stopping``, runs each new one in its own thread (scripts/localsm/transform.py)
and reports ``Completed`` / ``Failed`` + ``FailureReason`` / ``Stopped`` back to moto, which
DescribeTransformJob then answers. A ``Stopping`` job (StopTransformJob) stops before its next
request. On shutdown it stops its jobs and detaches (moto fails what was left running).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from scripts.localsm.deploy import Deployer, say
from scripts.localsm.transform import TransformJob

PRIVATE_AUTH = (  # moto checks no signature; botocore-shaped so its request parser is happy
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sagemaker/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


class TransformRunner:
    def __init__(self, deployer: Deployer, moto_url: str) -> None:
        self.deployer, self.moto_url = deployer, moto_url.rstrip("/")
        self.running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def private(self, action: str, doc: dict[str, Any]) -> dict[str, Any]:
        """One of moto_transform.py's private actions."""
        request = urllib.request.Request(
            f"{self.moto_url}/",
            data=json.dumps(doc).encode(),
            headers={
                "X-Amz-Target": f"SageMaker.{action}",
                "Content-Type": "application/x-amz-json-1.1",
                "Authorization": PRIVATE_AUTH,
            },
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def attach(self) -> None:
        done = self.private("LocalTransformRunner", {"Attach": True})
        if done.get("Orphaned"):
            say(f"transform: failed {done['Orphaned']} jobs a previous runtime left running")

    def summary(self) -> list[dict[str, Any]]:
        with self.lock:
            live = [{"job": name, "state": "InProgress"} for name in self.running]
            return live + list(self.finished.values())

    def poll_forever(self, interval: float = 1.0) -> None:
        while not self.stopping.is_set():
            try:
                self.sync()
            except Exception as exc:  # moto restarting: try again next round
                say(f"transform poll: {exc}")
            self.stopping.wait(interval)

    def sync(self) -> None:
        sm = self.deployer.aws("sagemaker")
        for status in ("InProgress", "Stopping"):
            pages = sm.get_paginator("list_transform_jobs").paginate(StatusEquals=status)
            for page in pages:
                for job in page["TransformJobSummaries"]:
                    self.consider(job["TransformJobName"], status)

    def consider(self, name: str, status: str) -> None:
        with self.lock:
            current = self.running.get(name)
            if current is not None:
                if status == "Stopping":
                    current[1].set()
                return
            if name in self.finished:  # reported, moto has not caught up yet
                return
        if status == "Stopping":  # never started here
            self.report(name, "Stopped", "")
            return
        desc = self.deployer.aws("sagemaker").describe_transform_job(TransformJobName=name)
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(desc, stop), daemon=True)
        with self.lock:
            self.running[name] = (thread, stop)
        say(f"transform job {name}: starting")
        thread.start()

    def run(self, desc: dict[str, Any], stop: threading.Event) -> None:
        name = desc["TransformJobName"]
        try:
            status, reason = TransformJob(self.deployer, desc, stop).run()
        except Exception as exc:
            status, reason = "Failed", f"InternalServerError: local runtime: {exc!r}"
        self.report(name, status, reason)

    def report(self, name: str, status: str, reason: str) -> None:
        doc = {"TransformJobName": name, "Status": status, "FailureReason": reason}
        try:
            self.private("LocalTransformJobUpdate", doc)
        except OSError as exc:
            say(f"transform job {name}: cannot report {status} to moto: {exc}")
        with self.lock:
            self.running.pop(name, None)
            self.finished[name] = {"job": name, "state": status, "reason": reason}

    def shutdown(self, wait: float = 20.0) -> None:
        self.stopping.set()
        with self.lock:
            jobs = list(self.running.values())
        for _, stop in jobs:
            stop.set()
        for thread, _ in jobs:
            thread.join(wait)
        try:
            self.private("LocalTransformRunner", {"Attach": False})
        except OSError as exc:
            say(f"transform: cannot detach from moto: {exc}")
