"""The image itself: metadata, size, contents, entry point (no model needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.docker

MAX_IMAGE_BYTES = 450 * 1000 * 1000


def run(
    docker_client: Any,
    image: Any,
    *command: str,
    entrypoint: str | None = None,
    user: str | None = None,
) -> tuple[int, str, str]:
    """``docker run --rm --network none IMAGE COMMAND``: exit code, stdout, stderr."""
    container = docker_client.containers.run(
        image.id, list(command), entrypoint=entrypoint, user=user, detach=True, network_mode="none"
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        return status, out, err
    finally:
        container.remove(force=True)


def test_sagemaker_label(image: Any) -> None:
    labels = image.attrs["Config"]["Labels"] or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"


def test_image_size_within_budget(image: Any) -> None:
    size = image.attrs["Size"]
    print(f"{image.tags}: {size} bytes ({size / 1e6:.0f} MB)")
    assert size <= MAX_IMAGE_BYTES, f"{size / 1e6:.0f} MB > 450 MB"


def test_config_exec_entrypoint_root_healthcheck(image: Any) -> None:
    config = image.attrs["Config"]
    assert config["Entrypoint"] == ["/usr/local/bin/sm-entrypoint"]  # exec form: no sh -c
    assert config.get("User", "") in ("", "root", "0")  # SageMaker runs the image as root
    health = config.get("Healthcheck") or {}
    assert health.get("Test", [None])[0] == "CMD"
    assert "/ping" in " ".join(health["Test"])
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["NLTK_DATA"] == "/usr/local/share/nltk_data"
    assert "8080/tcp" in (config.get("ExposedPorts") or {})


def test_help_prints_usage(docker_client: Any, image: Any) -> None:
    status, out, _ = run(docker_client, image, "--help")
    assert status == 0
    assert "serve" in out and "train" in out and "Usage" in out


def test_no_command_without_training_layout_fails_with_usage(docker_client: Any,
                                                              image: Any) -> None:
    """``docker run IMAGE`` (no command, no /opt/ml/input): usage on stderr and exit 2, never a
    silent success (a client that starts the image without ``train`` must see the failure)."""
    assert not image.attrs["Config"].get("Cmd")  # empty CMD: not even the base image's python3
    container = docker_client.containers.run(image.id, detach=True, network_mode="none")
    try:
        assert container.wait(timeout=60)["StatusCode"] == 2
        err = container.logs(stdout=False, stderr=True).decode()
        assert "no command given" in err and "Usage" in err
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("command", [["bogus"], ["serve-now"], [""]])
def test_unknown_command_exits_2_with_usage(
    docker_client: Any, image: Any, command: list[str]
) -> None:
    status, _, err = run(docker_client, image, *command)
    assert status == 2
    assert "error" in err and "Usage" in err


def test_nothing_baked_under_opt_ml_and_no_build_leftovers(docker_client: Any, image: Any) -> None:
    script = r"""
set -u
test ! -e /opt/ml || { echo "/opt/ml exists"; exit 1; }
for tool in gcc cc c++ g++ clang make; do
  if command -v "$tool" >/dev/null; then echo "compiler: $tool"; exit 1; fi
done
site=/opt/venv/lib/python3.11/site-packages
found=$(find "$site" -type d \( -name tests -o -path '*/nltk/test' \) | head -n 3)
test -z "$found" || { echo "test folders: $found"; exit 1; }
for d in /root/.cache /tmp/wheels /tmp/src /tmp/dist /tmp/tools /staging; do
  test ! -e "$d" || { echo "leftover: $d"; exit 1; }
done
test -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -x -e lock -e partial)" \
  || { echo "apt lists left"; exit 1; }
test ! -e /opt/venv/bin/pip || { echo "pip in the runtime venv"; exit 1; }
echo clean
"""
    status, out, err = run(docker_client, image, "-c", script, entrypoint="/bin/sh")
    assert status == 0, out + err
    assert out.strip() == "clean"


WORDNET_CHECK = """
import json
from nltk.corpus import wordnet as wn, stopwords
from nltk.stem import WordNetLemmatizer
import serving, sklearn, numpy, scipy
print(json.dumps({"version": wn.get_version(), "cars": WordNetLemmatizer().lemmatize("cars"),
                  "geese": WordNetLemmatizer().lemmatize("geese"),
                  "stopwords": len(stopwords.words("english")), "numpy": numpy.__version__}))
"""


@pytest.mark.parametrize("user", [None, "1000:1000"])
def test_wordnet_and_imports(docker_client: Any, image: Any, user: str | None) -> None:
    status, out, err = run(
        docker_client, image, "-c", WORDNET_CHECK, entrypoint="python", user=user
    )
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["version"] == "3.0"
    assert result["cars"] == "car"
    assert result["geese"] == "goose"
    assert result["stopwords"] == 179


UNUSED_MODULES_CHECK = """
import json, sys
import serving.serve, serving.app
lean = [m for m in ("numpy.f2py", "numpy.testing", "numpy.ma", "numpy.polynomial", "unittest")
        if m in sys.modules]
import numpy.f2py  # still there for whoever asks (the image keeps numpy whole)
print(json.dumps(lean))
"""


def test_server_imports_no_unused_numpy_submodule(docker_client: Any, image: Any) -> None:
    """serving.lean_scipy in the image's exact numpy and scipy (tests/test_lean_scipy.py has the
    equivalence checks): the server's imports leave numpy.f2py, numpy.testing, ... out."""
    status, out, err = run(docker_client, image, "-c", UNUSED_MODULES_CHECK, entrypoint="python")
    assert status == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == []
