"""The module-scoped stack the e2e tests share: see e2e_stack.py for what it runs."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator

import pytest
from e2e_stack import DATA_TGZ, IMAGE, Stack, clean_env, create_role, missing_prerequisite

# build_standins.sh's image names (its STANDIN_PREFIX), so a run can use its own tags.
STANDIN_PREFIX = os.environ.get("STANDIN_PREFIX", "sm-text-pipeline")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("e2e")
    st = Stack(work=work, env=clean_env(work))
    la_dir = str(work / "local_aws")
    started = time.monotonic()
    st.run(["bash", "scripts/build_standins.sh"], timeout=600)
    st.timings["build_standins"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    model, data = work / "model", work / "output"
    train = [sys.executable, "-m", "serving.train", "--data", str(DATA_TGZ)]
    st.run([*train, "--model-dir", str(model), "--output-data-dir", str(data)], timeout=600)
    st.timings["train"] = round(time.monotonic() - started, 1)
    st.step("local_aws_start", "localsm/aws", "start", "--runtime", "--work-dir", la_dir)
    try:
        env_json = st.script("localsm/aws", "env", "--work-dir", la_dir, "--format", "json")
        st.env.update(json.loads(env_json.stdout))
        st.env["SAGEMAKER_ROLE_ARN"] = create_role(st.env)
        image_uri = st.push("push_image", "--image", IMAGE, "--tag", "e2e")
        for algo in ("ntm", "knn"):
            standin = f"{STANDIN_PREFIX}-{algo}-standin:latest"
            st.push(f"push_{algo}", "--image", standin, "--repository", algo, "--tag", "1")
        st.out["IMAGE_URI"] = image_uri
        st.step(
            "upload", "upload_artifacts", "--model-dir", str(model), "--output-data-dir", str(data)
        )
        bucket = st.out["MODEL_DATA_URL"].rsplit("/model/", 1)[0]
        # NTM's topics must be what the model's topics-to-knn stage expects (train's setting).
        ntm_data = json.loads((data / "ntm" / "ntm_data.json").read_text())
        num_topics, st.out["FEATURE_DIM"] = (
            str(ntm_data["num_topics"]),
            str(ntm_data["feature_dim"]),
        )
        st.step(
            "builtin_training_local",
            "builtin_training",
            *("all", "--local", "--output", f"{bucket}/builtin", "--num-topics", num_topics),
            *("--train", st.out["NTM_TRAIN_S3"], "--auxiliary", st.out["NTM_AUXILIARY_S3"]),
        )
        st.step(
            "create_classifier",
            "endpoints",
            *("create-classifier", "--image", image_uri, "--model-data", st.out["MODEL_DATA_URL"]),
        )
        st.step("create_pipeline", "endpoints", "create-pipeline", *st.pipeline_args())
        seconds = st.wait_in_service("sm-text-classifier", "sm-text-recommender")
        st.timings["deploy_both"] = round(seconds, 1)
        yield st
    finally:
        st.script("localsm/aws", "stop", "--work-dir", la_dir, check=False, timeout=180)
        st.untag_pushed()  # the runtime's own pulls are untagged by `stop` (localsm/cleanup.py)
        print(f"\ne2e timings (s): {json.dumps(st.timings)}")
