#!/usr/bin/env bash
# Start dockerd if no daemon answers; wait until it does. Never touches a daemon we did not start.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd is not installed: run 'bash scripts/setup.sh' (installs Debian's docker.io)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "the Docker daemon is down and starting it needs root" >&2; exit 1
fi
mkdir -p .work
echo "[setup] starting dockerd (log: .work/dockerd.log)" >&2
nohup dockerd >.work/dockerd.log 2>&1 &
echo $! > .work/dockerd.pid
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not come up in 60 s; see .work/dockerd.log" >&2
exit 1
