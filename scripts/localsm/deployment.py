"""What the local runtime knows of one deployed endpoint: its containers and their state."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Box:
    """One running container of a deployment."""

    hostname: str
    image: str
    port: int
    host_port: int = 0
    name: str = ""
    container_id: str = ""


@dataclass
class Deployment:
    endpoint: str
    config: str
    variant: str
    model: str
    boxes: list[Box] = field(default_factory=list)
    sandbox: str = ""
    state: str = "Creating"
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    last_chain: list[dict[str, Any]] = field(default_factory=list)  # hops of the last request
    capture: dict[str, Any] = field(default_factory=dict)  # DataCaptureConfig (localsm/capture.py)

    def summary(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "config": self.config,
            "variant": self.variant,
            "model": self.model,
            "state": self.state,
            "reason": self.reason,
            "warnings": self.warnings,
            "last_chain": self.last_chain,
            "containers": [
                {"hostname": b.hostname, "image": b.image, "name": b.name, "port": b.host_port}
                for b in self.boxes
            ],
        }
