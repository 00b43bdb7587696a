"""The recommender's supporting pieces: empty documents and self-check probes (serving.train),
k from the catalog (scripts/knn_data.py), the self-check's diagnosis (scripts/selfcheck.py), the
local runtime's label check (scripts/localsm/deploy.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from scripts import knn_data, selfcheck
from scripts.localsm import deploy as local_deploy
from serving import neighbours
from serving.catalog import Catalog
from serving.train import drop_empty, write_probes


def test_empty_documents_leave_ntm_data_and_catalog_together() -> None:
    X = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 2], [0, 0]], dtype=np.float32))
    catalog = Catalog(["a", "b", "c", "d"], ["A", "B", "C", "D"], ["g1", "g2", "g3", "g4"])
    kept_X, kept, keep = drop_empty(X, catalog)
    assert keep.tolist() == [0, 2]
    assert kept.ids == ["a", "c"] and kept.newsgroups == ["g1", "g3"]
    assert kept_X.toarray().tolist() == [[1, 0], [0, 2]]  # row i <-> catalog i <-> k-NN label i


def test_probes_are_unique_documents_with_their_catalog_index(tmp_path: Path) -> None:
    rows = np.zeros((6, 3), dtype=np.float32)
    rows[0] = rows[1] = [10, 10, 5]  # a repost: ties with its twin, never a probe
    rows[2] = [1, 1, 1]  # too few words
    rows[3], rows[4], rows[5] = [20, 1, 0], [0, 30, 1], [5, 5, 15]
    texts = [f"text {i}" for i in range(7)]
    keep = np.array([0, 1, 2, 4, 5, 6])  # corpus document 3 was empty
    catalog = Catalog([f"id{i}" for i in keep], ["t"] * 6, ["g"] * 6)
    count = write_probes(sp.csr_matrix(rows), texts, catalog, keep, tmp_path / "p.jsonl", count=3)
    probes = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert count == 3
    assert [(p["index"], p["id"], p["text"]) for p in probes] == [
        (3, "id4", "text 4"), (4, "id5", "text 5"), (5, "id6", "text 6")]


def test_neighbours_needed_counts_distinct_threads() -> None:
    unit = neighbours.unit_rows(np.array([[1, 0], [0.99, 0.1], [0.9, 0.4], [0, 1]]))[0]
    threads = np.array([0, 0, 1, 2])
    need = knn_data.neighbours_needed(unit, threads, want=2)
    assert need.tolist() == [3, 3, 2, 2]
    assert knn_data.neighbours_needed(unit, threads, want=4).tolist() == [4, 4, 4, 4]


@pytest.mark.parametrize("distance", ["euclidean", "squared"])
def test_the_other_l2_reading_is_recognised(distance: str) -> None:
    cosine = 0.8
    d2 = 2 - 2 * cosine  # what k-NN sends, read the wrong way
    value = d2 if distance == "euclidean" else np.sqrt(d2)
    wrong = float(neighbours.Ranking("L2", distance).scores(np.array([value]))[0])
    assert abs(wrong - cosine) > 0.05
    assert selfcheck._alternative(distance, wrong) == pytest.approx(cosine)


def test_compare_scores_names_squared_distances() -> None:
    vectors = neighbours.unit_rows(np.array([[1.0, 0.0], [0.8, 0.6]]))[0].astype(np.float64)
    cosine = float(vectors[0] @ vectors[1])
    reported = 1 - (2 - 2 * cosine) ** 2 / 2  # squared distances read as Euclidean
    result = selfcheck.Result(True)
    recs = [{"id": "a", "score": 1.0}, {"id": "b", "score": reported}]
    selfcheck._compare_scores(result, {"id": "a", "index": 0}, recs,
                              {"a": 0, "b": 1}, vectors, "euclidean")
    assert "SERVING_KNN_DISTANCE=squared" in result.message()
    fine = selfcheck.Result(True)
    recs[1]["score"] = cosine
    selfcheck._compare_scores(fine, {"id": "a", "index": 0}, recs,
                              {"a": 0, "b": 1}, vectors, "euclidean")
    assert fine.problems == []


def test_explanations_name_the_broken_assumption() -> None:
    verbose = selfcheck._explain(422, "k-NN output without labels/distances: set verbose=true")
    assert "ignored SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT" in verbose
    outside = selfcheck._explain(422, "record 1: k-NN value 3 is outside 0..2")
    assert "SERVING_KNN_METRIC" in outside


def test_pipeline_image_without_the_bind_label_fails_the_deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    labels: dict[str, Any] = {}

    def fake_docker(*args: str, **kw: Any) -> str:
        return json.dumps(labels) if args[:2] == ("image", "inspect") else ""

    monkeypatch.setattr(local_deploy, "docker", fake_docker)
    deployer = local_deploy.Deployer(tmp_path, "t", "127.0.0.1:5000", "pw", aws=None)
    dep = local_deploy.Deployment("e", "c", "v", "m")
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"
    assert deployer.pull(uri, False, dep) == "127.0.0.1:5000/img:1"  # one container: no label
    with pytest.raises(local_deploy.DeployError, match="accept-bind-to-port=true"):
        deployer.pull(uri, True, dep)
    labels[local_deploy.BIND_LABEL] = "true"
    assert deployer.pull(uri, True, dep) == "127.0.0.1:5000/img:1"


class _Runtime:
    """sagemaker-runtime answering every probe with the given recommendations."""

    def __init__(self, recs: list[dict[str, Any]]) -> None:
        self.recs = recs

    def invoke_endpoint(self, **kw: Any) -> dict[str, Any]:
        body = json.dumps({"predictions": [{"recommendations": self.recs}]}).encode()
        return {"Body": io.BytesIO(body)}


class _Aws:
    def __init__(self, runtime: _Runtime) -> None:
        self.runtime = runtime

    def client(self, name: str) -> Any:
        return self.runtime


def test_check_reports_every_misplaced_probe_once(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = b"".join(json.dumps({"index": i, "id": f"d{i}", "text": "t"}).encode() + b"\n"
                      for i in range(3))
    monkeypatch.setattr(selfcheck, "model_files", lambda *a: {selfcheck.PROBES: probes,
                                                              selfcheck.CATALOG: probes})
    wrong = selfcheck.check(_Aws(_Runtime([{"id": "x", "score": 0.1}, {"id": "d0", "score": 0}])),
                            "e", "s3://b/m", "COSINE", "euclidean")
    assert not wrong.ok and wrong.checked == 3
    assert wrong.message().startswith("document d0 is at position 2 of 2; document d1 is not "
                                      "among the 2; document d2 is not among the 2, not first")
    assert wrong.message().count("SERVING_KNN_METRIC") == 1
    right = selfcheck.check(_Aws(_Runtime([{"id": "d0", "score": 1.0}])), "e", "s3://b/m", "L2",
                            "euclidean", probes=1)
    assert right.ok and right.checked == 1
