#!/usr/bin/env bash
# Serve a trained model with the image, as SageMaker would, and classify a sample document.
#
#   bash scripts/run_local.sh MODEL_DIR [IMAGE] [PORT]
#   bash scripts/run_local.sh --stop        (what `make stop` runs: stops every container
#                                            this script started, on any port)
#
# Runs `docker run -d IMAGE serve` with MODEL_DIR mounted read-only at /opt/ml/model and the
# server published on 127.0.0.1:PORT only; waits for GET /ping (printing how long the first 200
# took), POSTs a sample newsgroup message to /invocations and prints the answer. The container
# keeps running afterwards (named sm-text-pipeline-PORT; a re-run replaces it) so you can send
# your own requests; the stop command is printed. KEEP_RUNNING=0 stops it after the sample.
#
# Environment: SERVING_STAGE (classify), SAGEMAKER_MODEL_SERVER_WORKERS (container's default),
# PING_TIMEOUT (seconds to wait for /ping, 120), KEEP_RUNNING (1).
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
log() { printf '[run_local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

LABEL=sm-text-pipeline.run-local
case ${1:-} in
  -h | --help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
  --stop)
    ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
    if [[ -z $ids ]]; then log "no container of run_local.sh is running"; exit 0; fi
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null && log "stopped $(wc -w <<<"$ids") container(s)"
    exit 0 ;;
esac
MODEL_DIR=$1
IMAGE=${2:-sm-text-pipeline:latest}
PORT=${3:-8080}
STAGE=${SERVING_STAGE:-classify}
PING_TIMEOUT=${PING_TIMEOUT:-120}
KEEP_RUNNING=${KEEP_RUNNING:-1}
NAME=sm-text-pipeline-$PORT

[[ -d $MODEL_DIR ]] || die "model directory $MODEL_DIR does not exist (train one: make train)"
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
[[ -f $MODEL_DIR/manifest.json ]] || log "warning: $MODEL_DIR has no manifest.json; is it a model?"
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then die "PORT must be a port number"; fi

command -v docker >/dev/null 2>&1 || die "docker is not installed (bash scripts/setup.sh)"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer: bash scripts/start_dockerd.sh"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: build it with 'make image'"

# A container of an earlier run on this port is ours to replace.
if docker container inspect "$NAME" >/dev/null 2>&1; then
  log "replacing the earlier container $NAME"
  docker rm -f "$NAME" >/dev/null
fi

env_args=(-e "SERVING_STAGE=$STAGE")
[[ -n ${SAGEMAKER_MODEL_SERVER_WORKERS:-} ]] \
  && env_args+=(-e "SAGEMAKER_MODEL_SERVER_WORKERS=$SAGEMAKER_MODEL_SERVER_WORKERS")

log "starting $IMAGE serve (stage $STAGE) on http://127.0.0.1:$PORT, model $MODEL_DIR"
docker run -d --name "$NAME" --label "$LABEL=1" \
  -v "$MODEL_DIR:/opt/ml/model:ro" \
  -p "127.0.0.1:$PORT:8080" \
  "${env_args[@]}" \
  "$IMAGE" serve >/dev/null || die "docker run failed (is port $PORT already in use?)"

# The HTTP client is the host's python3: no curl needed.
python3 - "$NAME" "$PORT" "$PING_TIMEOUT" "$STAGE" <<'PY' || status=$?
import json, subprocess, sys, time, urllib.error, urllib.request

name, port, timeout, stage = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
started = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
            if response.status == 200:
                break
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}",
                            name], capture_output=True, text=True).stdout.split()
    if state and state[0] == "false":
        print(f"[run_local] error: the container exited with code {state[1]} before /ping "
              "answered; its log:", file=sys.stderr)
        subprocess.run(["docker", "logs", "--tail", "40", name])
        sys.exit(1)
    if time.monotonic() - started > timeout:
        print(f"[run_local] error: no 200 from {base}/ping in {timeout:.0f} s", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.1)
print(f"[run_local] /ping answered 200 after {time.monotonic() - started:.2f} s", file=sys.stderr)

if stage != "classify":
    print(f"[run_local] stage {stage}: no sample request (it takes NTM/k-NN output)",
          file=sys.stderr)
    sys.exit(0)
sample = (
    "From: pilot@example.edu\nSubject: Shuttle launch delayed again\n\n"
    "NASA moved the launch of the shuttle to next week because of the weather at the cape.\n"
    "The crew will spend two weeks in orbit repairing the satellite.\n"
)
request = urllib.request.Request(
    f"{base}/invocations", data=sample.encode(), method="POST",
    headers={"Content-Type": "text/plain", "Accept": "application/json"})
with urllib.request.urlopen(request, timeout=60) as response:
    answer = json.loads(response.read())
print("sample document:\n  " + sample.strip().replace("\n", "\n  "))
print("POST /invocations ->")
print(json.dumps(answer, indent=2))
PY
status=${status:-0}

if ((status != 0)) || [[ $KEEP_RUNNING == 0 ]]; then
  docker rm -f "$NAME" >/dev/null
  ((status == 0)) && log "stopped $NAME"
  exit "$status"
fi
cat >&2 <<EOF
[run_local] $NAME is serving on http://127.0.0.1:$PORT. Try:
  curl -s -H 'Content-Type: text/plain' --data-binary @some_message.txt http://127.0.0.1:$PORT/invocations
[run_local] logs: docker logs -f $NAME    stop: make stop (or docker rm -f $NAME)
EOF
