"""Fixtures for the NTM/k-NN stand-in tests: planted-topic word counts the tests make, stand-in
models trained on them, and real gunicorn stand-in servers on 127.0.0.1 (helpers in
standin_helpers.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from standin_helpers import NUM_TOPICS, VOCAB_SIZE, Standin, planted_counts, start_standin, vocab


@pytest.fixture(scope="session")
def counts() -> tuple[sp.csr_matrix, np.ndarray]:
    return planted_counts()


@pytest.fixture(scope="session")
def ntm_data(tmp_path_factory: pytest.TempPathFactory, counts: tuple) -> Path:
    """What ``serving.train --output-data-dir O`` writes under O/ntm, for the planted counts."""
    from serving.shards import write_sparse_shards

    X = counts[0]
    base = tmp_path_factory.mktemp("ntm-data") / "ntm"
    write_sparse_shards(X, base / "train", 3)
    (base / "auxiliary").mkdir()
    (base / "auxiliary" / "vocab.txt").write_text("".join(w + "\n" for w in vocab()))
    info = {"feature_dim": VOCAB_SIZE, "num_topics": NUM_TOPICS, "documents": X.shape[0]}
    (base / "ntm_data.json").write_text(json.dumps(info))
    return base


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, ntm_data: Path) -> Path:
    """``python -m standins.train all`` on the planted data: DIR/ntm, DIR/knn, topic vectors."""
    from standins import train

    out = tmp_path_factory.mktemp("standins")
    assert train.main(["all", "--ntm-data", str(ntm_data), "--k", "5", "--out", str(out)]) == 0
    for path in [out, *out.rglob("*")]:  # readable by any user, e.g. in a container
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


@pytest.fixture
def standin_factory() -> Iterator[Callable[..., Standin]]:
    started: list[Standin] = []

    def factory(role: str, model_dir: Path, env: dict[str, str] | None = None) -> Standin:
        server = start_standin(role, model_dir, env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
