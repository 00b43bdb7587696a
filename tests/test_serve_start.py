"""Start-up failures of ``python -m serving.serve`` end in one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ntm_features_without_wordnet_is_one_clear_line(tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    # NLTK searches NLTK_DATA, then its default folders: hide both from the child.
    code = ("import nltk, sys; nltk.data.path[:] = [sys.argv[1]]; from serving import serve; "
            "sys.exit(serve.main(['--model-dir', sys.argv[2], '--stage', 'ntm-features', "
            "'--port', '1']))")
    env = {**os.environ, "NLTK_DATA": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tiny_model_dir)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1 and "WordNet corpus was not found" in errors[0]
    assert "scripts/setup.sh" in errors[0]
