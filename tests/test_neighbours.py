"""serving/neighbours.py and the recommend stage's use of it: metric order, scores, threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving import neighbours, stages
from serving.artifact import Model
from serving.catalog import Catalog
from serving.config import Settings, SettingsError
from serving.errors import UnprocessableEntity
from serving.neighbours import NeighbourError, Ranking
from standins import knn


def test_unit_rows_and_zero_rows() -> None:
    unit, zero = neighbours.unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0]])
    assert zero.tolist() == [False, True]


@pytest.mark.parametrize("title", ["Re: Space Shuttle", "RE:  re: space   shuttle",
                                   "Fwd: Re: SPACE SHUTTLE", "Re[2]: space shuttle",
                                   "Re^3: Space Shuttle ", "AW: space shuttle", "space shuttle"])
def test_thread_key_strips_reply_prefixes(title: str) -> None:
    assert neighbours.thread_key(title) == "space shuttle"


def test_thread_ids_and_distinct() -> None:
    threads = neighbours.thread_ids(["A", "Re: a", "B", "", "", "re: b"])
    assert threads[0] == threads[1] and threads[2] == threads[5]
    assert len({threads[0], threads[2], threads[3], threads[4]}) == 4  # no subject: its own
    labels = np.array([1, 0, 5, 2, 3, 4])  # nearest first
    assert neighbours.distinct(threads, labels, 10).tolist() == [0, 2, 4, 5]
    assert neighbours.distinct(threads, labels, 2).tolist() == [0, 2]


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return neighbours.unit_rows(rng.dirichlet(np.ones(d), size=n))[0]


@pytest.mark.parametrize(("metric", "squared"), [("L2", False), ("L2", True), ("COSINE", False),
                                                ("INNER_PRODUCT", False)])
def test_ranking_undoes_every_documented_answer(metric: str, squared: bool) -> None:
    """Whatever the stand-in answers as AWS documents it (L2 ascending; COSINE/INNER_PRODUCT
    similarities ascending, nearest last), the ranking puts the nearest first and scores the
    cosine similarity of the unit vectors."""
    rng = np.random.default_rng(3)
    V = _unit(rng, 60, 8)
    index = knn.build(V, np.arange(60), k=7, index_metric=metric)
    Q = _unit(rng, 5, 8)
    _, labels, values = knn.query(index, Q, squared_l2=squared)
    ranking = Ranking(metric, "squared" if squared else "euclidean")
    for q, lab, val in zip(Q, labels.astype(int), values, strict=True):
        order, scores = ranking.rank(val)
        cosines = V @ q
        assert lab[order].tolist() == np.argsort(-cosines)[:7].tolist()
        np.testing.assert_allclose(scores, cosines[lab[order]], atol=1e-5)


def test_ranking_refuses_impossible_values_and_bad_names() -> None:
    with pytest.raises(NeighbourError, match=r"outside 0\.\.2"):
        Ranking("L2").rank(np.array([0.1, 3.0]))
    Ranking("L2", "squared").rank(np.array([0.1, 3.0]))  # squared distances reach 4
    with pytest.raises(NeighbourError, match=r"outside -1\.\.1"):
        Ranking("COSINE").rank(np.array([0.5, 1.7]))
    with pytest.raises(NeighbourError):
        Ranking("L2").rank(np.array([np.nan]))
    with pytest.raises(ValueError, match="k-NN metric"):
        Ranking("MANHATTAN")
    with pytest.raises(ValueError, match="L2 distance"):
        Ranking("L2", "cubed")


def test_settings_read_the_metric() -> None:
    s = Settings.from_env({"SERVING_KNN_METRIC": "cosine", "SERVING_KNN_DISTANCE": "SQUARED",
                           "SERVING_RECOMMENDATIONS": "5"})
    assert (s.knn_metric, s.knn_distance, s.recommendations) == ("COSINE", "squared", 5)
    assert (Settings.from_env({}).knn_metric, Settings.from_env({}).recommendations) == ("L2", 10)
    with pytest.raises(SettingsError, match="SERVING_KNN_METRIC"):
        Settings.from_env({"SERVING_KNN_METRIC": "hamming"})


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Model:
    return Model.load(tiny_model_dir)


def _recommend(model: Model, catalog: Catalog, **settings: object) -> stages.Stage:
    chosen = Model(model.model_dir, model.manifest)
    chosen.__dict__["catalog"] = catalog  # the cached_property, with chosen titles
    return stages.build(chosen, Settings(stage="recommend").replace(**settings))


def test_recommend_orders_by_the_metric_and_collapses_threads(model: Model) -> None:
    titles = ["Space", "Re: space", "Cars", "RE: Re: SPACE", "Bikes", "Guns", "re: cars"]
    catalog = Catalog([f"d{i}" for i in range(7)], titles, ["g"] * 7)
    labels = np.arange(7)
    sims = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9])  # COSINE: ascending, nearest last
    stage = _recommend(model, catalog, knn_metric="COSINE")
    got = stage.run([(labels, sims)], stages.Options())[0]
    assert [r["id"] for r in got] == ["d6", "d5", "d4", "d3"]  # d2 (cars), d1, d0 repeat threads
    assert [r["score"] for r in got] == [0.9, 0.6, 0.5, 0.4]
    stage = _recommend(model, catalog, knn_metric="L2")
    distances = np.sqrt(2 - 2 * sims[::-1])  # the same neighbours under L2: nearest first
    got = stage.run([(labels[::-1], distances)], stages.Options(top_k=2))[0]
    assert [r["id"] for r in got] == ["d6", "d5"]
    assert got[0]["score"] == pytest.approx(0.9, abs=1e-6)
    with pytest.raises(UnprocessableEntity, match=r"record 1: k-NN value 2\.89 is outside 0\.\.2"):
        stage.run([(labels, np.full(7, 1.7) ** 2)], stages.Options())


def test_recommend_with_the_wrong_metric_puts_the_nearest_last(model: Model) -> None:
    """Why the metric must be told: COSINE's ascending similarities read as L2 distances."""
    catalog = Catalog([f"d{i}" for i in range(5)], [f"t{i}" for i in range(5)], ["g"] * 5)
    sims = np.array([0.2, 0.4, 0.6, 0.8, 1.0])  # d4 is the query itself
    got = _recommend(model, catalog, knn_metric="L2").run([(np.arange(5), sims)],
                                                           stages.Options())[0]
    assert got[0]["id"] == "d0" and got[-1]["id"] == "d4"


def test_topics_to_knn_sends_unit_vectors_and_refuses_zeros(model: Model) -> None:
    stage = stages.build(model, Settings(stage="topics-to-knn"))
    W = np.full((2, model.num_topics), 1.0 / model.num_topics)
    out = stage.run(W, stages.Options())
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    with pytest.raises(UnprocessableEntity, match="record 2: all topic weights are zero"):
        stage.run(np.vstack([W[0], np.zeros(model.num_topics)]), stages.Options())
