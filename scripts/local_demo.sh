#!/usr/bin/env bash
# The whole recommendation pipeline, offline, from a clean state (docs/pipeline.md):
#
#   bash scripts/local_demo.sh ["your own text to get recommendations for"]
#
# 1. set-up (scripts/setup.sh: Debian packages, the project, dockerd), the image
#    (scripts/build_image.sh) and the NTM / k-NN stand-in images (scripts/build_standins.sh);
# 2. trains on 20 Newsgroups (python -m serving.train) into $DEMO_DIR/model and /output;
# 3. starts moto + the local registry + the local SageMaker runtime (scripts/localsm/aws.py start
#    --runtime, state in $DEMO_DIR/local_aws), creates an execution role in moto;
# 4. pushes our image and the stand-ins (as the built-in ntm:1 / knn:1) with scripts/ecr_push.py,
#    uploads the model and NTM data (scripts/upload_artifacts.py), trains NTM + k-NN
#    (scripts/builtin_training.py all --local: the stand-ins, locally);
# 5. creates the classifier and the 5-container recommender (scripts/endpoints.py), waits until
#    the runtime serves them, and prints the label and the recommendations (scripts/invoke.py)
#    for a sample document (or the text given as the first argument).
#
# The stack keeps running (KEEP_RUNNING=0 stops it at the end); the commands to use and to stop
# it are printed. A failure stops it. Environment: DEMO_DIR (.work/demo, wiped at the start),
# DATA (../shared/data/20news-bydate.tar.gz), NLTK_DATA (../shared/nltk_data), SKIP_SETUP=1,
# SKIP_BUILD=1 (use the images already built), KEEP_RUNNING (1).
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac
SAMPLE=${1:-"Subject: Shuttle launch delayed

NASA says the space shuttle launch is delayed again because of the weather; the orbiter
will carry a new satellite to orbit and the astronauts will test the robot arm."}
DEMO_DIR=${DEMO_DIR:-.work/demo}
DATA=${DATA:-../shared/data/20news-bydate.tar.gz}
export NLTK_DATA=${NLTK_DATA:-$(cd .. && pwd)/shared/nltk_data}
KEEP_RUNNING=${KEEP_RUNNING:-1}
PY=${PYTHON:-python3}
LA_DIR=$DEMO_DIR/local_aws

log() { printf '\n[local_demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
stop_stack() { "$PY" scripts/localsm/aws.py stop --work-dir "$LA_DIR" >/dev/null 2>&1 || true; }
# KEY=value result lines of a script, exported into this shell.
run_kv() {
  local out
  out=$("$@") || die "$(basename "$2") failed"
  while IFS='=' read -r key value; do
    [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] && export "$key=$value"
  done <<<"$out"
}

[[ -f $DATA ]] || die "no 20 Newsgroups archive at $DATA (set DATA=...)"
started=$(date +%s)
if [[ ${SKIP_SETUP:-0} != 1 ]]; then log "set-up"; bash scripts/setup.sh; fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building the image and the stand-ins"
  bash scripts/build_image.sh
fi
bash scripts/build_standins.sh

log "clean state: $DEMO_DIR"
[[ -f $LA_DIR/state.json ]] && stop_stack
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/docker-config"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)
LA_DIR=$DEMO_DIR/local_aws
trap 'status=$?; if ((status)); then log "failed: stopping the stack"; stop_stack; fi' EXIT

log "training on $DATA"
"$PY" -m serving.train --data "$DATA" --model-dir "$DEMO_DIR/model" \
  --output-data-dir "$DEMO_DIR/output" 2>"$DEMO_DIR/train.log" >/dev/null \
  || die "training failed: see $DEMO_DIR/train.log"
NUM_TOPICS=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_topics"])' \
  "$DEMO_DIR/output/ntm/ntm_data.json")

log "moto + registry + local SageMaker runtime"
"$PY" scripts/localsm/aws.py start --runtime --work-dir "$LA_DIR" >"$DEMO_DIR/env.sh"
unset AWS_PROFILE AWS_SESSION_TOKEN
# shellcheck disable=SC1091
source "$DEMO_DIR/env.sh"
export DOCKER_CONFIG=$DEMO_DIR/docker-config
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
SAGEMAKER_ROLE_ARN=$("$PY" - <<'EOF'
import json, boto3
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
role = boto3.client("iam").create_role(RoleName="sm-text-demo", AssumeRolePolicyDocument=json.dumps(trust))
print(role["Role"]["Arn"])
EOF
)
export SAGEMAKER_ROLE_ARN

log "pushing the images to the local registry ($ECR_REGISTRY_HOST)"
for algo in ntm knn; do
  run_kv "$PY" scripts/ecr_push.py --image "sm-text-pipeline-$algo-standin:latest" \
    --repository "$algo" --tag 1
done
run_kv "$PY" scripts/ecr_push.py --image sm-text-pipeline:latest --tag demo
log "uploading the model and the NTM data to S3 (moto)"
run_kv "$PY" scripts/upload_artifacts.py --model-dir "$DEMO_DIR/model" \
  --output-data-dir "$DEMO_DIR/output"
log "NTM + k-NN training (stand-ins, --local), $NUM_TOPICS topics"
run_kv "$PY" scripts/builtin_training.py all --local --output "${DATA_S3%data/}builtin" \
  --train "$NTM_TRAIN_S3" --auxiliary "$NTM_AUXILIARY_S3" --num-topics "$NUM_TOPICS"

log "endpoints: sm-text-classifier and sm-text-recommender"
run_kv "$PY" scripts/endpoints.py create-classifier --model-data "$MODEL_DATA_URL"
run_kv "$PY" scripts/endpoints.py create-pipeline --model-data "$MODEL_DATA_URL" \
  --ntm-training-job "$NTM_TRAINING_JOB" --knn-training-job "$KNN_TRAINING_JOB"
"$PY" - <<'EOF' || die "the runtime did not deploy the endpoints: see $LA_DIR/runtime.log"
import json, os, sys, time, urllib.request
url = os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] + "/_local/endpoints"
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    states = {d["endpoint"]: d["state"] for d in json.load(urllib.request.urlopen(url))}
    wanted = [states.get(n) for n in ("sm-text-classifier", "sm-text-recommender")]
    if "Failed" in wanted:
        sys.exit(1)
    if wanted == ["InService", "InService"]:
        sys.exit(0)
    time.sleep(1)
sys.exit(1)
EOF

log "the sample document"
printf '%s\n' "$SAMPLE" >"$DEMO_DIR/sample.txt"
sed 's/^/    /' "$DEMO_DIR/sample.txt"
label=$("$PY" scripts/invoke.py --endpoint sm-text-classifier --content-type text/plain \
  --input "$DEMO_DIR/sample.txt")
recs=$("$PY" scripts/invoke.py --endpoint sm-text-recommender --content-type text/plain \
  --input "$DEMO_DIR/sample.txt")
LABEL=$label RECS=$recs "$PY" - <<'EOF'
import json, os
top = json.loads(os.environ["LABEL"])["predictions"][0]
print(f"\nclassifier: {top['label']} (p={top['probability']:.3f})\n")
print("recommended training articles (ntm-features -> NTM -> topics-to-knn -> k-NN -> recommend):")
for r in json.loads(os.environ["RECS"])["predictions"][0]["recommendations"]:
    print(f"  {r['score']:.3f}  {r['newsgroup']:<26} {r['title'][:70]}")
EOF

log "done in $(($(date +%s) - started)) s"
if [[ $KEEP_RUNNING == 1 ]]; then
  cat >&2 <<EOF

The stack keeps running. Use it from another shell:
  eval "\$(python3 scripts/localsm/aws.py env --work-dir $LA_DIR)"
  echo '{"instances": ["the hockey playoffs"]}' | python3 scripts/invoke.py --endpoint sm-text-recommender
Runtime log: $LA_DIR/runtime.log   Deployments: \$AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME/_local/endpoints
Stop it (and its containers):
  python3 scripts/localsm/aws.py stop --work-dir $LA_DIR
EOF
else
  stop_stack
  log "stack stopped"
fi
