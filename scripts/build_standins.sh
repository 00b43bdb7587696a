#!/usr/bin/env bash
# Build the NTM and k-NN STAND-IN images (not AWS code) FROM the project image:
#
#   bash scripts/build_standins.sh
#
# gives sm-text-pipeline-ntm-standin:latest and sm-text-pipeline-knn-standin:latest (targets
# `ntm` and `knn` of standins/Dockerfile; build context: the standins/ folder). The project image
# must exist first (bash scripts/build_image.sh). Nothing is downloaded: the stand-ins add only
# the standins package to the project image's Python.
#
# Environment:
#   PROJECT_IMAGE      base image (sm-text-pipeline:latest)
#   STANDIN_PREFIX     image name prefix (sm-text-pipeline): <prefix>-ntm-standin, <prefix>-knn-standin
#   DOCKER_BUILD_ARGS  extra arguments for `docker build` (word-split), e.g. "--no-cache"
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT_IMAGE=${PROJECT_IMAGE:-sm-text-pipeline:latest}
STANDIN_PREFIX=${STANDIN_PREFIX:-sm-text-pipeline}

log() { printf '[build_standins] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed (bash scripts/setup.sh)"
timeout 30 docker info >/dev/null 2>&1 \
  || die "the Docker daemon does not answer (bash scripts/start_dockerd.sh)"
docker image inspect "$PROJECT_IMAGE" >/dev/null 2>&1 \
  || die "$PROJECT_IMAGE is missing: build the project image first (bash scripts/build_image.sh)"

git_sha=unknown
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git_sha=$(git rev-parse --short HEAD)
  [[ -z $(git status --porcelain -- standins 2>/dev/null) ]] || git_sha="$git_sha-dirty"
fi

extra_args=()
if [[ -n ${DOCKER_BUILD_ARGS:-} ]]; then read -r -a extra_args <<<"$DOCKER_BUILD_ARGS"; fi

for role in ntm knn; do
  image="$STANDIN_PREFIX-$role-standin:latest"
  started=$(date +%s)
  log "building $image (target $role) FROM $PROJECT_IMAGE"
  docker build -q \
    -f standins/Dockerfile \
    --target "$role" \
    --build-arg "PROJECT_IMAGE=$PROJECT_IMAGE" \
    --build-arg "GIT_SHA=$git_sha" \
    ${extra_args[@]+"${extra_args[@]}"} \
    --tag "$image" \
    standins >/dev/null || die "docker build of $image failed"
  log "built $image in $(($(date +%s) - started)) s"
done
