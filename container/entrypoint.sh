#!/bin/sh
# Entry point of the sm-text-pipeline image (the Dockerfile's exec-form ENTRYPOINT).
# SageMaker starts the image as `docker run IMAGE serve` (hosting) or `docker run IMAGE train`
# (training). With no command (the Dockerfile's CMD is empty; some clients, e.g. the SageMaker
# Python SDK v3 local trainer, start a training image without `train`), the image trains when
# a SageMaker training layout is mounted (/opt/ml/input/config/hyperparameters.json or a channel
# under /opt/ml/input/data/) and otherwise prints the usage and exits 2. Each command replaces this shell (exec), so SIGTERM from `docker stop` / SageMaker
# reaches the Python process (gunicorn's arbiter for `serve`) directly.
set -eu

usage() {
  cat <<'EOF'
Usage: docker run [DOCKER OPTIONS] sm-text-pipeline COMMAND

Commands:
  serve    Run the inference server (python -m serving.serve): GET /ping, POST /invocations.
           Model: /opt/ml/model (SageMaker unpacks ModelDataUrl there; mount it read-only
           locally: -v MODEL_DIR:/opt/ml/model:ro). Settings come from the environment:
             SAGEMAKER_BIND_TO_PORT          port to listen on (default 8080)
             SAGEMAKER_MODEL_SERVER_WORKERS  gunicorn workers (default: CPU count)
             SAGEMAKER_MODEL_SERVER_TIMEOUT  request timeout in seconds (default 60)
             SERVING_STAGE                   classify | ntm-features | topics-to-knn | recommend
             SERVING_FRONT_END               nginx (default: buffers requests) | none
             SERVING_HUGE_PAGES              on (default: the heap in 2 MB pages) | off
  train    Train a model following SageMaker's training contract (python -m serving.train):
           reads /opt/ml/input/config/hyperparameters.json and the channels
           /opt/ml/input/data/train (and test), writes /opt/ml/model and /opt/ml/output/data;
           on failure writes /opt/ml/output/failure and exits non-zero.
  --help   Show this message.
  (none)   `train` if /opt/ml/input/config/hyperparameters.json or /opt/ml/input/data/*
           exists, else this message and exit status 2.

Examples:
  docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/model:/opt/ml/model:ro" sm-text-pipeline serve
  docker run --rm -v "$PWD/opt_ml:/opt/ml" sm-text-pipeline train
EOF
}

# SM_ROOT is /opt/ml unless set (serving.train reads the same variable; tests use it).
sm_root=${SM_ROOT:-/opt/ml}

training_layout() {
  [ -f "$sm_root/input/config/hyperparameters.json" ] && return 0
  for channel in "$sm_root"/input/data/*; do
    [ -e "$channel" ] && return 0
  done
  return 1
}

if [ "$#" -eq 0 ]; then
  if training_layout; then
    echo "no command given; a SageMaker training layout is present under $sm_root: training" >&2
    exec python -m serving.train
  fi
  echo "error: no command given (and no SageMaker training layout under $sm_root/input)" >&2
  usage >&2
  exit 2
fi

# glibc's malloc asks for transparent huge pages for the server's heap (serving/heap.py says
# why) unless SERVING_HUGE_PAGES is off or GLIBC_TUNABLES already sets glibc.malloc.hugetlb.
# glibc reads it only at start: set here, `python -m serving.serve` need not start again.
huge_pages_tunable() {
  case $(printf '%s' "${SERVING_HUGE_PAGES:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]') in
    0 | false | no | off) return 0 ;;
  esac
  case ":${GLIBC_TUNABLES:-}" in
    *:glibc.malloc.hugetlb=*) return 0 ;;
  esac
  GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
  export GLIBC_TUNABLES
}

command=$1
shift
case $command in
  serve) huge_pages_tunable; exec python -m serving.serve "$@" ;;
  train) exec python -m serving.train "$@" ;;
  -h | --help | help) usage; exit 0 ;;
  *)
    echo "error: unknown command '$command' (expected serve, train or --help)" >&2
    usage >&2
    exit 2
    ;;
esac
