"""Helpers for the NTM/k-NN stand-in tests (imported by name: conftest.py is not importable
when several test folders have one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `standins` is not (yet) an installed package
    sys.path.insert(0, str(REPO))
N_GROUPS, WORDS_PER_GROUP, N_COMMON = 4, 10, 10
VOCAB_SIZE = N_GROUPS * WORDS_PER_GROUP + N_COMMON  # 50
NUM_TOPICS = 4


def planted_counts(per_group: int = 30, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Word counts of documents from 4 planted topics (10 own words each) plus 10 common words;
    returns (counts float32 CSR, group of each row)."""
    rng = np.random.default_rng(seed)
    rows, groups = [], []
    for g in range(N_GROUPS):
        p = np.full(VOCAB_SIZE, 0.02 / (VOCAB_SIZE - WORDS_PER_GROUP - N_COMMON))
        p[g * WORDS_PER_GROUP : (g + 1) * WORDS_PER_GROUP] = 0.7 / WORDS_PER_GROUP
        p[-N_COMMON:] = 0.28 / N_COMMON
        for _ in range(per_group):
            rows.append(rng.multinomial(int(rng.integers(20, 60)), p / p.sum()))
            groups.append(g)
    return sp.csr_matrix(np.array(rows, dtype=np.float32)), np.array(groups)


def vocab() -> list[str]:
    own = [f"g{g}w{i}" for g in range(N_GROUPS) for i in range(WORDS_PER_GROUP)]
    return own + [f"common{i}" for i in range(N_COMMON)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Standin:
    url: str
    process: subprocess.Popen

    def post(self, body: bytes, content_type: str, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_standin(role: str, model_dir: Path, env: dict[str, str] | None = None) -> Standin:
    """``python -m standins serve`` (gunicorn, 2 workers) on 127.0.0.1:<free port>."""
    port = free_port()
    full_env = {
        **os.environ,
        "STANDIN_ROLE": role,
        "SM_MODEL_DIR": str(model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "STANDIN_HOST": "127.0.0.1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "STANDIN_LOG_LEVEL": "warning",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "standins", "serve"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Standin(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the {role} stand-in exited with {process.returncode}: {err}")
        try:
            if requests.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the {role} stand-in did not answer /ping in 60 s")
