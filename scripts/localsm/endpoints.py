"""Keeps the local runtime's containers in step with the endpoints moto knows (runtime.py).

Every 2 s: list moto's endpoints; deploy the current config of each one not yet deployed (one at
a time, 2 cores); an updated endpoint keeps its old containers until the new ones answer
``/ping`` (blue/green, as SageMaker updates); a deleted endpoint loses its containers. A failed
deployment is not retried until the endpoint's config changes.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/

from scripts.localsm.cleanup import sweep
from scripts.localsm.deploy import Deployer, DeployError, Deployment, say

ACCOUNT = "123456789012"  # moto's default account


class ApiError(Exception):
    """An error answer of the runtime API: HTTP status, error type (None: none) and message."""

    def __init__(self, status: int, code: str | None, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def validation(message: str) -> ApiError:
    return ApiError(400, "ValidationError", message)


class Endpoints:
    """The deployments, by endpoint name: serving (live), being started, or failed."""

    def __init__(self, deployer: Deployer, wait_seconds: float) -> None:
        self.deployer, self.wait_seconds = deployer, wait_seconds
        self.live: dict[str, Deployment] = {}
        self.pending: dict[str, Deployment] = {}
        self.failed: dict[str, Deployment] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def all(self) -> list[Deployment]:
        with self.lock:
            return [*self.live.values(), *self.pending.values(), *self.failed.values()]

    def _current(self, name: str) -> Deployment | None:
        with self.lock:
            return self.live.get(name) or self.pending.get(name) or self.failed.get(name)

    def poll_forever(self, interval: float = 2.0) -> None:
        while not self.stopping.is_set():
            try:
                self.sync()
            except Exception as exc:  # moto restarting, a docker hiccup: try again next round
                say(f"poll: {exc}")
            self.stopping.wait(interval)

    def sync(self) -> None:
        sm = self.deployer.aws("sagemaker")
        names = {e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]}
        with self.lock:
            for name in [n for n in self.failed if n not in names]:
                del self.failed[name]
            gone = [self.live.pop(n) for n in list(self.live) if n not in names]
        for dep in gone:
            self.deployer.teardown(dep)
        for name in sorted(names):
            if self.stopping.is_set():
                return
            try:
                dep, containers, timeout = self.deployer.plan(name)
            except Exception as exc:  # deleted meanwhile, or a half-made definition
                say(f"{name}: cannot read its definition yet: {exc}")
                continue
            with self.lock:
                current = self.live.get(name) or self.pending.get(name) or self.failed.get(name)
                if current and current.config == dep.config:
                    continue
                self.pending[name] = dep
            self.start(dep, containers, timeout)

    def start(self, dep: Deployment, containers: list[dict[str, Any]], timeout: float) -> None:
        say(f"{dep.endpoint}: deploying {dep.config} ({len(containers)} containers)")
        started = time.monotonic()
        try:
            self.deployer.deploy(dep, containers, timeout)
        except (DeployError, OSError) as exc:
            dep.state, dep.reason = "Failed", str(exc)
            say(f"{dep.endpoint}: deployment of {dep.config} FAILED: {exc}")
            with self.lock:
                self.pending.pop(dep.endpoint, None)
                self.failed[dep.endpoint] = dep
            dep.ready.set()
            return
        dep.state = "InService"
        say(f"{dep.endpoint}: {dep.config} InService in {time.monotonic() - started:.1f} s")
        with self.lock:
            self.pending.pop(dep.endpoint, None)
            self.failed.pop(dep.endpoint, None)
            old, self.live[dep.endpoint] = self.live.get(dep.endpoint), dep
        dep.ready.set()
        if old is not None and old is not dep:
            self.deployer.teardown(old)

    def serving(self, name: str) -> Deployment:
        """The endpoint's serving deployment, waiting (up to wait_seconds) for one to start."""
        deadline = time.monotonic() + self.wait_seconds
        dep = self._current(name)
        if dep is None:
            try:
                self.deployer.aws("sagemaker").describe_endpoint(EndpointName=name)
            except Exception:
                raise validation(f"Endpoint {name} of account {ACCOUNT} not found.") from None
            while dep is None and time.monotonic() < deadline:
                time.sleep(0.5)
                dep = self._current(name)
            if dep is None:
                raise validation(f"Endpoint {name} is not deployed yet: try again.")
        if not dep.ready.wait(max(0.0, deadline - time.monotonic())):
            raise validation(f"Endpoint {name} is still being deployed: try again.")
        if dep.state != "InService":
            with self.lock:
                dep = self.live.get(name, dep)
        if dep.state != "InService":
            raise validation(f"Endpoint {name} failed to deploy locally: {dep.reason[:1500]}")
        return dep

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            deps = [*self.live.values(), *self.pending.values()]
            self.live.clear()
        for dep in deps:
            self.deployer.teardown(dep)
        sweep(self.deployer.work)
