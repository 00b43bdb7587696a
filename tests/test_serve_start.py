"""Start-up failures of ``python -m serving.serve`` end in one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _artifact_before_lemmas(model_dir: Path, into: Path) -> Path:
    """A copy of ``model_dir`` as training wrote it before the lemmas were saved with the NTM
    cleaner (no ``ntm/lemmas.json``; the manifest rewritten over the remaining files)."""
    from serving.artifact import MANIFEST, write_manifest

    copy = into / "model"
    shutil.copytree(model_dir, copy)
    (copy / "ntm" / "lemmas.json").unlink()
    manifest = json.loads((copy / MANIFEST).read_text())
    write_manifest(copy, extra={k: v for k, v in manifest.items()
                                if k not in ("schema_version", "created", "versions", "files")})
    return copy


def test_ntm_features_of_an_older_artifact_without_wordnet_is_one_clear_line(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    # An artifact that carries its lemmas (tests/test_lemmas.py) needs no WordNet to serve; an
    # older one reads the installed corpus. NLTK searches NLTK_DATA, then its default folders:
    # hide both from the child.
    model_dir = _artifact_before_lemmas(tiny_model_dir, tmp_path)
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    code = ("import nltk, sys; nltk.data.path[:] = [sys.argv[1]]; from serving import serve; "
            "sys.exit(serve.main(['--model-dir', sys.argv[2], '--stage', 'ntm-features', "
            "'--port', '1']))")
    env = {**os.environ, "NLTK_DATA": str(empty), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, str(empty), str(model_dir)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1 and "WordNet corpus was not found" in errors[0]
    assert "scripts/setup.sh" in errors[0]


PINNED_CHECK = """
import os, sys
{before}
from serving import serve
import numpy, scipy.sparse, sklearn.naive_bayes
from threadpoolctl import threadpool_info
print(serve._THREADS_PINNED_AT_LOAD, sorted({{p["num_threads"] for p in threadpool_info()}}))
"""


@pytest.mark.parametrize(("env", "before", "expected"), [
    ({}, "", "True [1]"),  # the container's serve: pools have one thread, no per-worker pinning
    ({"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}, "", "False [2]"),
    ({}, "import numpy", "False"),  # loaded before serve set the variables: workers pin them
])
def test_thread_pools_pinned_before_the_libraries_load(env: dict[str, str], before: str,
                                                       expected: str) -> None:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                          "NUMEXPR_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PINNED_CHECK.format(before=before)],
                          env={**clean, **env, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip().startswith(expected), done.stdout


def test_post_fork_pins_threads_when_the_environment_did_not(monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    from serving import serve

    calls: list[int] = []
    masters: list[int] = []  # (the real one would tie this test process to its parent)
    monkeypatch.setattr(serve, "die_with_master", masters.append)
    monkeypatch.setattr("threadpoolctl.threadpool_limits", lambda n: calls.append(n))
    monkeypatch.setattr(serve, "_THREADS_PINNED_AT_LOAD", True)
    worker = type("Worker", (), {"ppid": 4242})()
    serve._post_fork(None, worker)
    assert calls == [] and masters == [4242]
    monkeypatch.setattr(serve, "_THREADS_PINNED_AT_LOAD", False)
    serve._post_fork(None, worker)
    assert calls == [1] and masters == [4242, 4242]


def test_sigterm_while_starting_stops_cleanly(tiny_model_dir: Path) -> None:
    """SageMaker may stop a container that is still loading: SIGTERM during start-up ends it
    with 0 and removes the front end's directory (the default action left it, exit 143)."""
    import signal
    import tempfile
    import time

    from tests.conftest import free_port

    tmp = tempfile.mkdtemp(prefix="t", dir="/tmp")
    try:
        env = {**os.environ, "SM_MODEL_DIR": str(tiny_model_dir), "TMPDIR": tmp,
               "SAGEMAKER_BIND_TO_PORT": str(free_port()), "SERVING_HOST": "127.0.0.1",
               "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
        process = subprocess.Popen([sys.executable, "-m", "serving.serve"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.listdir(tmp) and time.monotonic() < deadline:  # the front end's directory
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err.decode()[-2000:]
        assert os.listdir(tmp) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
