#!/usr/bin/env bash
# Build the sm-text-pipeline image (what `make image` runs). Non-interactive; safe to re-run.
#
#   bash scripts/build_image.sh
#
# 1. Downloads the wheels that requirements/lock.txt, build-lock.txt and nodeps.txt pin (with
#    their hashes; nodeps.txt may name an sdist) on the host into wheels/ (git-ignored). Cached:
#    only missing files are fetched, so a complete wheels/ builds with no index at all; files the
#    locks no longer name are removed. pip inside the build never reaches an index.
# 2. Picks the base: the public Python image where its registry answers (checked with a 5 s probe,
#    then a bounded `docker pull`), else a copy of it already in the local image store, else the
#    Debian bookworm base that scripts/base_image.sh builds with debootstrap from Debian's archive
#    (cached as sm-text-pipeline-base:bookworm).
# 3. docker build, tagged IMAGE_NAME:<git short sha> and IMAGE_NAME:latest; removes the dangling
#    images of this project that the rebuild left behind; prints the image size.
#
# Environment:
#   IMAGE_NAME     image repository name (sm-text-pipeline)
#   BASE_IMAGE     use exactly this base (skips the choice below; pulled if not present)
#   BASE_SOURCE    auto | public | debian   (auto: public if reachable, else debian)
#   PUBLIC_BASE    public.ecr.aws/docker/library/python:3.11-slim-bookworm
#   LOCAL_BASE     sm-text-pipeline-base:bookworm (the debootstrap base's tag)
#   PULL_TIMEOUT   seconds allowed for pulling the public base (300)
#   WHEELS_DIR     wheels/ (must stay inside the build context)
#   DOCKER_BUILD_ARGS  extra arguments for `docker build` (word-split), e.g. "--no-cache"
set -euo pipefail
case ${1:-} in
  "") ;;
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  *) echo "usage: bash scripts/build_image.sh [--help]  (settings come from the environment)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

IMAGE_NAME=${IMAGE_NAME:-sm-text-pipeline}
PUBLIC_BASE=${PUBLIC_BASE:-public.ecr.aws/docker/library/python:3.11-slim-bookworm}
LOCAL_BASE=${LOCAL_BASE:-sm-text-pipeline-base:bookworm}
BASE_SOURCE=${BASE_SOURCE:-auto}
PULL_TIMEOUT=${PULL_TIMEOUT:-300}
WHEELS_DIR=${WHEELS_DIR:-wheels}
PYTHON=${PYTHON:-python3}
LOCKS=(requirements/lock.txt requirements/build-lock.txt requirements/nodeps.txt)

log() { printf '[build_image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
started=$(date +%s)

case $BASE_SOURCE in auto | public | debian) ;; *) die "BASE_SOURCE must be auto, public or debian" ;; esac
case $WHEELS_DIR in /* | ../*) die "WHEELS_DIR must be a relative path inside the repository" ;; esac

# --- Docker --------------------------------------------------------------------------------
if ! command -v docker >/dev/null 2>&1; then
  die "docker is not installed. On Debian: 'bash scripts/setup.sh' (installs docker.io and starts the daemon)"
fi
if ! docker_info=$(timeout 30 docker info 2>&1); then
  if grep -qi 'permission denied' <<<"$docker_info"; then
    die "no permission to use the Docker daemon's socket: run as root or join the 'docker' group"
  fi
  die "the Docker daemon does not answer ($(tail -n 1 <<<"$docker_info")). Start it: 'bash scripts/start_dockerd.sh'"
fi

# --- Proxies (only if this machine uses one; none is needed where the archive answers directly)
proxy_args=()
if [[ -z ${http_proxy:-}${HTTP_PROXY:-} ]] && command -v apt-config >/dev/null 2>&1; then
  APT_PROXY=""
  eval "$(apt-config shell APT_PROXY Acquire::http::Proxy)"
  [[ -n $APT_PROXY && $APT_PROXY != DIRECT ]] && export http_proxy=$APT_PROXY
fi
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [[ -n ${!var:-} ]]; then
    proxy_args+=(--build-arg "$var=${!var}")
    # A proxy on the host's loopback is only reachable from the build with the host's network.
    if [[ $var != [nN]* && ${!var} =~ ://(localhost|127\.|\[::1\]) ]]; then
      proxy_args+=(--network host)
    fi
  fi
done

# --- 1. Wheels -----------------------------------------------------------------------------
for lock in "${LOCKS[@]}"; do [[ -f $lock ]] || die "$lock is missing (bash requirements/compile.sh)"; done
mkdir -p "$WHEELS_DIR"
log "wheels: checking $WHEELS_DIR against ${LOCKS[*]}"
"$PYTHON" - "$WHEELS_DIR" "${LOCKS[@]}" <<'PY'
"""Fetch the locked wheels that WHEELS_DIR lacks; drop the ones no lock names."""

import hashlib
import os
import re
import subprocess
import sys
import tempfile

wheels_dir, locks = sys.argv[1], sys.argv[2:]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def parse(path):
    """Yield (name, version, {sha256,...}, requirement text) for each pin of a uv/pip lock."""
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--hash") else line
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(.*)$", line.strip())
        if not m:
            continue
        hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", m.group(3)))
        if not hashes:
            sys.exit(f"{path}: {m.group(1)} has no --hash (regenerate with requirements/compile.sh)")
        yield norm(m.group(1)), m.group(2), hashes, line.strip()


def compatible(filename: str) -> bool:
    """A wheel the image (CPython 3.11, glibc 2.36, x86_64) can install."""
    tags = filename[:-4].split("-")[-3:]
    py, abi, plat = tags
    plat_ok = plat == "any" or all(
        p.endswith("x86_64") and p.startswith("manylinux") for p in plat.split(".")
    )
    py_ok = any(t in {"py3", "cp311", "cp310", "cp39", "cp38", "cp37", "py2"} for t in py.split("."))
    return plat_ok and py_ok and abi in {"none", "abi3", "cp311"}


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


pins = [pin for lock in locks for pin in parse(lock)]
files = sorted(f for f in os.listdir(wheels_dir) if f.endswith((".whl", ".tar.gz")))


def usable(f: str, name: str, version: str) -> bool:
    """A wheel the image can install, or the sdist of a package published only as one."""
    if f.endswith(".tar.gz"):
        return norm(f[: -len(f"-{version}.tar.gz")]) == name and f.endswith(f"-{version}.tar.gz")
    parts = f.split("-")
    return norm(parts[0]) == name and parts[1] == version and compatible(f)


keep, missing = set(), []
for name, version, hashes, requirement in pins:
    found = None
    for f in files:
        if usable(f, name, version):
            if sha256(os.path.join(wheels_dir, f)) in hashes:
                found = f
                break
    if found:
        keep.add(found)
    else:
        missing.append(requirement)

for f in os.listdir(wheels_dir):
    path = os.path.join(wheels_dir, f)
    if f not in keep and os.path.isfile(path):
        print(f"[build_image] wheels: removing {f} (not in the locks)", file=sys.stderr)
        os.remove(path)

if not missing:
    print(f"[build_image] wheels: all {len(pins)} cached", file=sys.stderr)
    sys.exit(0)

print(f"[build_image] wheels: downloading {len(missing)} of {len(pins)}", file=sys.stderr)
# requirements/nodeps.txt may pin a package published only as an sdist (the image builds its
# wheel offline, stage `project`): its files are fetched as PyPI has them, wheels preferred; the
# other locks' strictly as wheels for the image's platform.
source_ok = {r for lock in locks if lock.endswith("nodeps.txt") for _, _, _, r in parse(lock)}
platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)]
platforms += ["manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
              "manylinux_2_5_x86_64", "manylinux1_x86_64"]
binary = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
          "--abi", "cp311"] + [arg for p in platforms for arg in ("--platform", p)]
env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
for group, flags in (([r for r in missing if r not in source_ok], binary),
                     ([r for r in missing if r in source_ok], ["--prefer-binary"])):
    if not group:
        continue
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(group) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "-qq", "--no-deps", "--require-hashes",
           *flags, "--dest", wheels_dir, "-r", req.name]
    try:
        rc = subprocess.call(cmd, env=env)
    finally:
        os.unlink(req.name)
    if rc:
        sys.exit(f"[build_image] error: pip download failed (exit {rc}); is PyPI reachable?")
PY

# --- 2. Base image -------------------------------------------------------------------------
registry_of() { # the registry host of an image reference (Docker Hub when none is named)
  local first=${1%%/*}
  if [[ $1 == */* && ($first == *.* || $first == *:* || $first == localhost) ]]; then
    echo "$first"
  else
    echo registry-1.docker.io
  fi
}

registry_answers() { # any HTTP answer from https://HOST/v2/ within 5 s (401 counts: it is there)
  "$PYTHON" - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"https://{sys.argv[1]}/v2/", timeout=5)
except urllib.error.HTTPError:
    pass
except Exception as exc:  # DNS failure, refused, timeout, TLS
    print(f"[build_image] {sys.argv[1]} does not answer: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

pull_public() {
  local host
  host=$(registry_of "$PUBLIC_BASE")
  registry_answers "$host" || return 1
  log "base: pulling $PUBLIC_BASE (at most ${PULL_TIMEOUT} s)"
  timeout "$PULL_TIMEOUT" docker pull -q "$PUBLIC_BASE" >/dev/null || {
    log "base: pulling $PUBLIC_BASE failed or timed out"
    return 1
  }
}

if [[ -n ${BASE_IMAGE:-} ]]; then
  base=$BASE_IMAGE
  have_image "$base" || timeout "$PULL_TIMEOUT" docker pull -q "$base" >/dev/null \
    || die "BASE_IMAGE=$base is neither local nor pullable"
  log "base: $base (BASE_IMAGE)"
elif [[ $BASE_SOURCE != debian ]] && pull_public; then
  base=$PUBLIC_BASE
  log "base: $base (public)"
elif [[ $BASE_SOURCE != debian ]] && have_image "$PUBLIC_BASE"; then
  base=$PUBLIC_BASE
  log "base: $base (registry unreachable; using the copy already in the local image store)"
elif [[ $BASE_SOURCE == public ]]; then
  die "BASE_SOURCE=public but $PUBLIC_BASE can neither be pulled nor found locally"
else
  log "base: no registry; using the Debian base built with debootstrap ($LOCAL_BASE)"
  BASE_TAG=$LOCAL_BASE bash scripts/base_image.sh
  base=$LOCAL_BASE
fi

# --- 3. Build ------------------------------------------------------------------------------
git_sha=""
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git_sha=$(git rev-parse --short HEAD)
  # A build of uncommitted (or untracked, not ignored) files must not pass for the commit.
  [[ -z $(git status --porcelain 2>/dev/null) ]] || git_sha="$git_sha-dirty"
elif [[ -n ${CODEBUILD_RESOLVED_SOURCE_VERSION:-} ]]; then
  git_sha=${CODEBUILD_RESOLVED_SOURCE_VERSION:0:7}
else
  git_sha=nogit
  log "no git commit to tag with: tagging $IMAGE_NAME:$git_sha"
fi

extra_args=()
if [[ -n ${DOCKER_BUILD_ARGS:-} ]]; then read -r -a extra_args <<<"$DOCKER_BUILD_ARGS"; fi

log "building $IMAGE_NAME:$git_sha and $IMAGE_NAME:latest FROM $base"
build_started=$(date +%s)
docker build \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "GIT_SHA=$git_sha" \
  ${proxy_args[@]+"${proxy_args[@]}"} \
  ${extra_args[@]+"${extra_args[@]}"} \
  --tag "$IMAGE_NAME:$git_sha" \
  --tag "$IMAGE_NAME:latest" \
  . || die "docker build failed"
build_seconds=$(($(date +%s) - build_started))

# Untagged images that this project's rebuilds left behind, and no one else's: earlier final
# images (the tags moved on), and build-stage results older than the newest of their stage
# (the classic builder keeps those as its cache; BuildKit makes none).
docker image prune -f --filter dangling=true \
  --filter "label=org.opencontainers.image.title=$IMAGE_NAME" >/dev/null || true
stage_images=$(docker images -q --no-trunc --filter dangling=true --filter label=sm-text-pipeline.stage)
stale=""
if [[ -n $stage_images ]]; then
  # shellcheck disable=SC2086  # one ID per word
  stale=$(docker image inspect -f '{{index .Config.Labels "sm-text-pipeline.stage"}} {{.Created}} {{.Id}}' \
    $stage_images | sort -r | awk 'seen[$1]++ { print $NF }')
fi
if [[ -n $stale ]]; then
  # shellcheck disable=SC2086  # one ID per word
  docker rmi $stale >/dev/null 2>&1 || true
fi

size=$(docker image inspect -f '{{.Size}}' "$IMAGE_NAME:latest")
log "built $IMAGE_NAME:$git_sha = $IMAGE_NAME:latest: $size bytes ($((size / 1000000)) MB)," \
  "docker build ${build_seconds} s, total $(($(date +%s) - started)) s"
if ((size > 450 * 1000 * 1000)); then
  log "warning: the image is over the 450 MB budget"
fi
