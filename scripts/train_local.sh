#!/usr/bin/env bash
# Train with the image the way a SageMaker training job runs it, and keep the model.
#
#   bash scripts/train_local.sh DATA OUT_DIR [IMAGE]
#
# DATA is what becomes the `train` channel: a folder of <newsgroup>/<message> files (the 20news
# train folder), a folder of CSV/JSON Lines files, or one CSV/JSON Lines file (columns text,label,
# optionally id,title). A folder holding *train* and *test* folders, or a 20news .tar.gz, gives
# both the `train` and the `test` channel.
# The script lays out /opt/ml in a temporary directory (input/config/hyperparameters.json,
# inputdataconfig.json, resourceconfig.json, input/data/<channel>), mounts it, runs
# `docker run IMAGE train` with no network, and on success moves /opt/ml/model to OUT_DIR
# (replacing an earlier model there; a non-empty OUT_DIR that is not a model is refused).
# On failure it prints /opt/ml/output/failure and exits with the container's code.
#
# Environment:
#   HYPERPARAMETERS  JSON object (default {}); values are passed as strings, like SageMaker does
#   OUTPUT_DATA_DIR  if set, /opt/ml/output/data (NTM data, evaluation report) is copied there
#   KEEP_OPT_ML=1    keep the temporary /opt/ml tree (its path is printed)
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
log() { printf '[train_local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case ${1:-} in -h | --help) usage; exit 0 ;; esac
if (($# < 2 || $# > 3)); then usage >&2; exit 2; fi
DATA=$1
OUT_DIR=$2
IMAGE=${3:-sm-text-pipeline:latest}
HYPERPARAMETERS=${HYPERPARAMETERS:-"{}"}

[[ -e $DATA ]] || die "$DATA does not exist"
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")
if [[ -e $OUT_DIR && ! -d $OUT_DIR ]]; then die "$OUT_DIR is not a directory"; fi
if [[ -d $OUT_DIR && -n $(ls -A "$OUT_DIR") && ! -f $OUT_DIR/manifest.json ]]; then
  die "$OUT_DIR is not empty and holds no model (manifest.json): refusing to replace it"
fi

command -v docker >/dev/null 2>&1 || die "docker is not installed (bash scripts/setup.sh)"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer: bash scripts/start_dockerd.sh"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: build it with 'make image'"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sm-train.XXXXXX")
OPT_ML=$WORK/opt_ml
cleanup() {
  if [[ ${KEEP_OPT_ML:-0} == 1 ]]; then log "kept $OPT_ML"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$OPT_ML"/input/config "$OPT_ML"/input/data "$OPT_ML"/model "$OPT_ML"/output/data

# --- channels: bind-mounted read-only, except an archive, which is unpacked first ----------
mounts=()
channel() { # NAME SOURCE: mount SOURCE (a folder, or a file placed in a folder) as the channel
  local name=$1 source=$2 target=/opt/ml/input/data/$1
  mkdir -p "$OPT_ML/input/data/$name"
  if [[ -d $source ]]; then
    mounts+=(-v "$source:$target:ro")
  else
    mounts+=(-v "$source:$target/$(basename "$source"):ro")
  fi
  channels+=("$name")
}
channels=()
find_split() { # DIR WORD -> the one subfolder of DIR whose name contains WORD
  find "$1" -mindepth 1 -maxdepth 1 -type d -iname "*$2*" | sort | head -n 1
}
case $DATA in
  *.tar.gz | *.tgz | *.tar)
    log "unpacking $DATA"
    mkdir -p "$WORK/unpacked"
    tar -xf "$DATA" -C "$WORK/unpacked"
    DATA=$WORK/unpacked
    ;;
esac
if [[ -d $DATA && -n $(find_split "$DATA" train) ]]; then
  channel train "$(find_split "$DATA" train)"
  test_dir=$(find_split "$DATA" test)
  [[ -n $test_dir ]] && channel test "$test_dir"
else
  channel train "$DATA"
fi

# --- config files, as SageMaker writes them --------------------------------------------------
python3 - "$OPT_ML/input/config" "$HYPERPARAMETERS" "${channels[@]}" <<'PY'
import json, sys
config, raw, channels = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    hp = json.loads(raw)
except ValueError as exc:
    sys.exit(f"[train_local] error: HYPERPARAMETERS is not JSON: {exc}")
if not isinstance(hp, dict):
    sys.exit("[train_local] error: HYPERPARAMETERS must be a JSON object")
# CreateTrainingJob's HyperParameters is a string -> string map.
hp = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in hp.items()}
with open(f"{config}/hyperparameters.json", "w") as f:
    json.dump(hp, f, indent=1)
with open(f"{config}/inputdataconfig.json", "w") as f:
    json.dump({c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"} for c in channels}, f, indent=1)
with open(f"{config}/resourceconfig.json", "w") as f:
    json.dump({"current_host": "algo-1", "hosts": ["algo-1"],
               "network_interface_name": "eth0"}, f, indent=1)
PY

# Outputs belong to the caller: run as the caller's uid unless that is root (SageMaker's case).
user_args=()
(($(id -u) == 0)) || user_args=(--user "$(id -u):$(id -g)")

log "training with $IMAGE (channels: ${channels[*]}; hyper-parameters: $HYPERPARAMETERS)"
started=$(date +%s)
status=0
docker run --rm --network none \
  -v "$OPT_ML:/opt/ml" \
  "${mounts[@]}" \
  ${user_args[@]+"${user_args[@]}"} \
  "$IMAGE" train || status=$?
seconds=$(($(date +%s) - started))

if ((status != 0)); then
  log "training failed (exit $status) after $seconds s"
  if [[ -s $OPT_ML/output/failure ]]; then
    log "/opt/ml/output/failure:"
    head -c 2000 "$OPT_ML/output/failure" >&2
    echo >&2
  fi
  exit "$status"
fi
[[ -f $OPT_ML/model/manifest.json ]] || die "training exited 0 but wrote no model/manifest.json"

mkdir -p "$OUT_DIR"
find "$OUT_DIR" -mindepth 1 -delete
cp -a "$OPT_ML/model/." "$OUT_DIR/"
if [[ -n ${OUTPUT_DATA_DIR:-} ]]; then
  mkdir -p "$OUTPUT_DATA_DIR"
  cp -a "$OPT_ML/output/data/." "$OUTPUT_DATA_DIR/"
  log "output data in $OUTPUT_DATA_DIR"
fi
log "model in $OUT_DIR ($seconds s)"
