#!/usr/bin/env bash
# Regenerate the hashed locks the image installs from (run from anywhere; needs PyPI):
#   requirements/lock.txt        <- pyproject.toml [project].dependencies (runtime, the image's venv)
#   requirements/build-lock.txt  <- requirements/build.in (setuptools, builds the project wheel)
#   requirements/nodeps.txt      <- requirements/nodeps.in (installed with --no-deps: what it says)
# Both are resolved for CPython 3.11 on Linux x86_64, glibc 2.36 (Debian bookworm), the image's
# platform, whatever machine runs this. uv keeps the versions already in a lock unless asked:
#   bash requirements/compile.sh             # add/remove what pyproject.toml changed
#   bash requirements/compile.sh --upgrade   # also move unpinned transitive deps to their newest
# uv: `python3 -m pip install uv==0.13.8`. Then `make image` downloads the new wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "uv is not installed: python3 -m pip install uv==0.13.8" >&2
  exit 1
fi
# A TLS-intercepting proxy's CA lives in the system bundle; uv's own roots would reject it.
if [[ -z ${SSL_CERT_FILE:-} && -r /etc/ssl/certs/ca-certificates.crt ]]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi

common=(--python-version 3.11 --python-platform x86_64-manylinux_2_36 --generate-hashes
  --index-url "${UV_INDEX_URL:-https://pypi.org/simple}" --quiet
  --custom-compile-command "bash requirements/compile.sh")

uv pip compile "${common[@]}" "$@" pyproject.toml -o requirements/lock.txt
uv pip compile "${common[@]}" "$@" requirements/build.in -o requirements/build-lock.txt
uv pip compile "${common[@]}" "$@" --no-deps requirements/nodeps.in -o requirements/nodeps.txt
echo "wrote requirements/lock.txt, requirements/build-lock.txt and requirements/nodeps.txt" >&2
