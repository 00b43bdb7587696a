"""The stand-ins' training and inference on planted-topic data the tests make."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from standin_helpers import NUM_TOPICS, VOCAB_SIZE, planted_counts

from standins import knn, topics
from standins.train import knn_query, ntm_infer, train_knn, train_ntm


def neighbour_precision(vectors: np.ndarray, groups: np.ndarray, k: int = 5) -> float:
    index = knn.build(vectors, np.arange(len(vectors)), k + 1)
    _, labels, _ = knn.query(index, vectors, k + 1)
    neighbours = labels[:, 1:].astype(int)  # the first is the document itself
    return float((groups[neighbours] == groups[:, None]).mean())


@pytest.mark.parametrize("algorithm", topics.ALGORITHMS)
def test_topic_weights_are_proportions_that_find_the_planted_topics(
    counts: tuple, algorithm: str
) -> None:
    X, groups = counts
    model = topics.fit(X, NUM_TOPICS, algorithm=algorithm, seed=0)
    W = topics.infer(model, X)
    assert W.shape == (X.shape[0], NUM_TOPICS) and W.dtype == np.float32
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-5)
    assert neighbour_precision(W, groups) >= 0.9
    np.testing.assert_array_equal(W, topics.infer(model, X))  # deterministic


def test_nmf_inference_is_scikit_learns_transform(counts: tuple) -> None:
    from sklearn.decomposition import NMF

    X, _ = counts
    model = topics.fit(X, NUM_TOPICS, "nmf", seed=0)
    A = topics.sublinear_tfidf(topics.check_counts(X, VOCAB_SIZE), model.idf)
    nmf = NMF(NUM_TOPICS, init="nndsvda", max_iter=200, tol=1e-3, random_state=0).fit(A)
    W = nmf.transform(A) * nmf.components_.sum(axis=1)
    np.testing.assert_allclose(topics.infer(model, X), W / W.sum(axis=1, keepdims=True), atol=2e-3)


def test_lda_inference_is_scikit_learns_e_step(counts: tuple) -> None:
    from sklearn.decomposition import LatentDirichletAllocation

    X, _ = counts
    model = topics.fit(X, NUM_TOPICS, "lda", seed=0, max_iter=5)
    lda = LatentDirichletAllocation(
        n_components=NUM_TOPICS,
        doc_topic_prior=1 / NUM_TOPICS,
        learning_method="online",
        max_iter=5,
        batch_size=512,
        total_samples=X.shape[0],
        random_state=0,
    ).fit(X)
    np.testing.assert_allclose(topics.infer(model, X), lda.transform(X), atol=1e-5)


@pytest.mark.parametrize("algorithm", topics.ALGORITHMS)
def test_a_documents_topics_do_not_depend_on_the_rest_of_the_batch(
    counts: tuple, algorithm: str
) -> None:
    X, _ = counts
    model = topics.fit(X, NUM_TOPICS, algorithm=algorithm)
    whole = topics.infer(model, X)
    for rows in ([0], [5, 77], list(range(40, 47))):
        np.testing.assert_allclose(topics.infer(model, X[rows]), whole[rows], atol=1e-6)


@pytest.mark.parametrize("algorithm", topics.ALGORITHMS)
def test_a_document_with_no_known_word_gets_uniform_weights(counts: tuple, algorithm: str) -> None:
    model = topics.fit(counts[0], NUM_TOPICS, algorithm=algorithm)
    W = topics.infer(model, sp.csr_matrix((2, VOCAB_SIZE), dtype=np.float32))
    np.testing.assert_allclose(W, 1.0 / NUM_TOPICS, atol=1e-6)


def test_counts_of_the_wrong_width_or_sign_are_refused(counts: tuple) -> None:
    model = topics.fit(counts[0], NUM_TOPICS)
    with pytest.raises(ValueError, match="expected 50 word counts"):
        topics.infer(model, np.ones((1, VOCAB_SIZE + 1)))
    with pytest.raises(ValueError, match="negative"):
        topics.infer(model, -np.ones((1, VOCAB_SIZE)))
    with pytest.raises(ValueError, match="finite"):
        topics.infer(model, np.full((1, VOCAB_SIZE), np.nan))
    with pytest.raises(ValueError, match="num_topics"):
        topics.fit(counts[0], 1)
    with pytest.raises(ValueError, match="algorithm"):
        topics.fit(counts[0], 3, algorithm="ntm")


def test_train_ntm_writes_a_pickle_free_model_dir_and_tarball(
    ntm_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ntm"
    model = train_ntm(ntm_data / "train", ntm_data / "auxiliary" / "vocab.txt", NUM_TOPICS, out)
    config = json.loads((out / "standin.json").read_text())
    assert config["feature_dim"] == VOCAB_SIZE and config["num_topics"] == NUM_TOPICS
    assert "not AWS code" in config["notice"]
    names = {p.name for p in out.iterdir()}
    assert {"standin.json", "topic_word.npy", "idf.npy", "vocab.txt", "model.tar.gz"} <= names
    assert {p.suffix for p in out.iterdir()} <= {".json", ".npy", ".txt", ".gz"}
    with tarfile.open(out / "model.tar.gz") as tar:
        members = tar.getmembers()
        assert sorted(m.name for m in members) == sorted(names - {"model.tar.gz"})
        assert all(m.isfile() and "/" not in m.name for m in members)
        unpacked = tmp_path / "opt_ml_model"
        tar.extractall(unpacked, filter="data")
    X = planted_counts(per_group=3, seed=9)[0]
    np.testing.assert_array_equal(ntm_infer(unpacked, X), ntm_infer(model, X))
    top = json.loads((out / "top_words.json").read_text())
    assert len(top) == NUM_TOPICS and all(w.startswith(("g", "common")) for w in top["0"])


def test_knn_l2_distances_labels_and_votes() -> None:
    """L2, the built-in's default: Euclidean distances, ascending, nearest first."""
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 0]], dtype=np.float64)
    index = train_knn(vectors, [10, 11, 12, 13, 14], k=3)
    assert index.labels.dtype == np.float32 and index.vectors.dtype == np.float32
    assert index.hyperparameters() == {
        "feature_dim": 2,
        "k": 3,
        "predictor_type": "classifier",
        "sample_size": 5,
        "index_metric": "L2",
    }
    predicted, labels, distances = knn_query(index, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert labels.dtype == np.float32 and labels.shape == distances.shape == (2, 3)
    # [1,0] twice at distance 0: the tie goes to the lower index position
    np.testing.assert_array_equal(labels, [[10, 14, 11], [12, 13, 11]])
    np.testing.assert_allclose(distances[0], [0, 0, np.hypot(0.1, 0.1)], atol=1e-6)
    assert (np.diff(distances, axis=1) >= 0).all()
    np.testing.assert_array_equal(predicted, [10, 12])  # all labels differ: nearest wins
    squared = knn.query(index, np.array([[1.0, 0.0]]), squared_l2=True)[2]
    np.testing.assert_allclose(squared[0], distances[0] ** 2, atol=1e-6)


def test_knn_cosine_answers_similarities_nearest_last() -> None:
    """COSINE "for cosine similarity", verbose values "sorted from smallest to largest" (AWS
    DG): the most similar neighbour comes LAST, as AWS's tutorial's [::-1] expects."""
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [2, 0]], dtype=np.float64)
    index = train_knn(vectors, [10, 11, 12, 13, 14], k=3, index_metric="COSINE")
    predicted, labels, sims = knn_query(index, np.array([[1.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_array_equal(labels, [[11, 14, 10], [11, 13, 12]])
    cos = 0.9 / np.hypot(0.9, 0.1)
    np.testing.assert_allclose(sims[0], [cos, 1, 1], atol=1e-6)
    assert (np.diff(sims, axis=1) >= 0).all()
    np.testing.assert_array_equal(predicted, [10, 12])  # the vote still prefers the nearest


def test_knn_vote_regressor_other_metrics_and_k() -> None:
    vectors = np.array([[0.0], [1.0], [2.0], [10.0]])
    index = knn.build(vectors, [1, 2, 2, 1], k=3)
    assert knn.query(index, [[0.2]])[0][0] == 2.0  # labels 1, 2, 2: the majority
    regressor = knn.build(
        vectors, [1, 2, 3, 10], k=2, predictor_type="regressor", index_metric="L2"
    )
    predicted, labels, distances = knn.query(regressor, [[0.4]])
    np.testing.assert_allclose(distances, [[0.4, 0.6]], atol=1e-6)
    assert predicted[0] == pytest.approx(1.5)
    inner = knn.build(vectors, [0, 1, 2, 3], k=2, index_metric="inner_product")
    _, labels, distances = knn.query(inner, [[1.0]])
    np.testing.assert_array_equal(labels, [[2, 3]])  # the largest inner product last
    np.testing.assert_allclose(distances, [[2, 10]])
    assert knn.query(index, [[0.0]], k=50)[1].shape == (1, 4)  # k larger than the index
    sampled = knn.build(np.eye(6), np.arange(6), k=2, sample_size=3)
    assert sampled.vectors.shape == (3, 6) and sampled.sample_size == 3


def test_knn_refuses_bad_hyperparameters_and_queries() -> None:
    with pytest.raises(ValueError, match="index_metric"):
        knn.build(np.eye(3), np.arange(3), k=1, index_metric="MANHATTAN")
    with pytest.raises(ValueError, match="k <="):
        knn.build(np.eye(3), np.arange(3), k=4)
    with pytest.raises(ValueError, match="labels"):
        knn.build(np.eye(3), np.arange(2), k=1)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        knn.query(knn.build(np.eye(3), np.arange(3), k=1), np.ones((1, 4)))


def test_knn_index_round_trips_through_its_model_dir(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2**24 + 1])  # float32 labels lose precision above 2**24, as AWS's
    index = train_knn(np.eye(3), labels, 2, out_dir=tmp_path / "knn")
    loaded = knn.KnnIndex.load(tmp_path / "knn")
    assert loaded.hyperparameters() == index.hyperparameters()
    assert loaded.labels[2] == np.float32(2**24)
    assert (tmp_path / "knn" / "model.tar.gz").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "standin.json").write_text('{"standin": "ntm"}')
    with pytest.raises(ValueError, match="not a k-NN"):
        knn.KnnIndex.load(tmp_path / "other")


def test_train_all_cli_writes_both_models_and_the_topic_vectors(
    trained: Path, counts: tuple
) -> None:
    X, groups = counts
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["num_topics"] == NUM_TOPICS and summary["documents"] == X.shape[0]
    assert summary["knn"]["feature_dim"] == NUM_TOPICS and summary["knn"]["k"] == 5
    vectors = np.load(trained / "topic_vectors.npy")
    np.testing.assert_array_equal(vectors, ntm_infer(trained / "ntm", X))
    _, labels, _ = knn_query(trained / "knn", vectors[:4])
    np.testing.assert_array_equal(labels[:, 0], np.arange(4))  # each finds itself first
    for model in ("ntm", "knn"):
        assert (trained / model / "model.tar.gz").exists()
    assert neighbour_precision(vectors, groups) >= 0.9
