#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh Debian bookworm machine of this kind:
# system packages, the Python project with its dev extras, and a running Docker daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# nginx: the buffering front end that `python -m serving.serve` starts in front of gunicorn
# (SERVING_FRONT_END=nginx, the default), as in the image.
# gcc and libc6-dev: the project's C extension (serving/_wordscan.c), built by pip below.
APT_PACKAGES=(docker.io debootstrap docker-registry apache2-utils wrk nginx gcc libc6-dev)
# ... and the Python headers, which Debian's python3 keeps in python3-dev (a Python built from
# source, as pyenv's or the python image's, has them already).
if ! python3 -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null; then
  APT_PACKAGES+=(python3-dev)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "need root to install: ${missing[*]}"; exit 1
  fi
  log "installing ${missing[*]}"
  # No service may start from these packages (nginx's would take port 80): the project's
  # scripts start dockerd, the registry and nginx themselves. Debian's policy-rc.d convention.
  guard=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $guard ]]; then rm -f "$guard"; trap - EXIT; fi
fi
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] \
  || { log "nginx is missing: the server's front end (apt-get install nginx)"; exit 1; }

if ! python3 -c "import serving._wordscan, pytest, moto, boto3, docker" 2>/dev/null \
   || [[ pyproject.toml -nt .work/.installed || serving/_wordscan.c -nt .work/.installed ]]; then
  log "installing the project with its dev extras (and building serving/_wordscan.c)"
  python3 -m pip install -q -e '.[dev]'
  # The extension is optional for pip (an install without a compiler still works, slower);
  # here it is required: the tests run both the C and the numpy paths.
  python3 -c "import serving._wordscan" \
    || { log "serving/_wordscan.c did not build (gcc, libc6-dev and the Python headers?)"; exit 1; }
  mkdir -p .work && touch .work/.installed
fi
# sagemaker-inference without its dependencies (boto3 & co.), as in the image.
if ! python3 -c "import sagemaker_inference.encoder, six" 2>/dev/null \
   || [[ requirements/nodeps.txt -nt .work/.installed-nodeps ]]; then
  log "installing requirements/nodeps.txt without dependencies"
  python3 -m pip install -q --no-deps --require-hashes -r requirements/nodeps.txt
  mkdir -p .work && touch .work/.installed-nodeps
fi

# NLTK's data where NLTK looks by default (no NLTK_DATA needed), from the same recipe as the
# image: Debian's WordNet 3.0 and the stop-word list in requirements/nltk.
NLTK_HOME=/usr/local/share/nltk_data
if [[ ! -f $NLTK_HOME/corpora/wordnet/lexnames || ! -f $NLTK_HOME/corpora/stopwords/english ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    log "need root to install NLTK data into $NLTK_HOME (or set NLTK_DATA)"; exit 1
  fi
  log "installing NLTK data (WordNet 3.0 from Debian, stop words) into $NLTK_HOME"
  apt-get update -qq
  sh requirements/nltk/install.sh "$NLTK_HOME"
fi

# --- The SageMaker Python SDK v2 as a real client (tests/sdk) ----------------------------------
# Local mode runs the image through docker compose: Debian's docker-compose (1.29, the
# `docker-compose` command the SDK falls back to when the `docker compose` plugin is absent).
# The SDK pins dependencies that conflict with ours, so it gets its own venv; its telemetry is
# switched off by the tests (tests/sdk/sdk_client.py), which also keep every call on the host.
SDK_VERSION=2.257.7   # latest 2.x on PyPI (2026-12)
SDK_VENV=.work/sdk-venv
if ! command -v docker-compose >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    log "need root to install docker-compose"; exit 1
  fi
  log "installing docker-compose"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
if [[ "$("$SDK_VENV/bin/python" -c 'from importlib.metadata import version; print(version("sagemaker"))' 2>/dev/null)" != "$SDK_VERSION" ]]; then
  log "installing the SageMaker Python SDK $SDK_VERSION into $SDK_VENV"
  python3 -m venv "$SDK_VENV"
  "$SDK_VENV/bin/python" -m pip install -q --disable-pip-version-check "sagemaker[local]==$SDK_VERSION"
fi

bash scripts/start_dockerd.sh
log "ready"
