"""Helpers for the NTM/k-NN stand-in tests (imported by name: conftest.py is not importable
when several test folders have one)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for `tests.conftest` when run from elsewhere
    sys.path.insert(0, str(REPO))

from tests.conftest import RunningServer, free_port, launch  # noqa: E402

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


Standin = RunningServer


def start_standin(role: str, model_dir: Path, env: dict[str, str] | None = None) -> Standin:
    """``python -m standins serve`` (gunicorn, 2 workers) on 127.0.0.1:<free port>."""
    port = free_port()
    return launch(["standins", "serve"], {
        "STANDIN_ROLE": role,
        "SM_MODEL_DIR": str(model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "STANDIN_HOST": "127.0.0.1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "STANDIN_LOG_LEVEL": "warning",
        **(env or {}),
    }, port, name=f"{role} stand-in")
