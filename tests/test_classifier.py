from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from serving import classifier as classifier_module
from serving.classifier import TextClassifier, served_weights, sparse_times
from serving.data import load_splits
from serving.hyperparameters import parse
from serving.textfeatures import load_cleaner, save_cleaner
from serving.train import fit_classifier, make_cleaner, make_tfidf
from tests.conftest import DATA_TGZ, need_real_data


def _check_equal_to_sklearn(data: str, hp_raw: dict, tmp_path: Path) -> float:
    splits = load_splits(data)
    hp = parse(hp_raw)
    ours = fit_classifier(hp, splits.train)
    cleaner = make_cleaner(hp, lemmatize=hp.lemmatize)
    reference = make_pipeline(cleaner, make_tfidf(hp), MultinomialNB(alpha=hp.alpha))
    reference.fit(splits.train.texts, splits.train.labels)
    ours.save(tmp_path / "clf")
    loaded = TextClassifier.load(tmp_path / "clf")
    texts = splits.test.texts
    expected = reference.predict_proba(texts)
    # Our weights are float16, centred per feature (scikit-learn's float64): on the whole 20news
    # test split no prediction changes and no probability moves by more than 5e-4 (4e-4 seen).
    assert loaded.log_prob.dtype == np.float16
    for model in (ours, loaded):
        proba = model.predict_proba(texts)
        assert np.abs(proba - expected).max() <= 5e-4
        np.testing.assert_allclose(proba, expected, rtol=5e-3, atol=5e-4)
        predicted = [splits.train.label_names.index(c) for c in model.predict(texts)]
        assert predicted == list(reference.predict(texts))
        # the one-document path gives the batch numbers
        for i in range(0, len(texts), max(1, len(texts) // 25)):
            np.testing.assert_allclose(model.predict_proba([texts[i]])[0], expected[i],
                                       rtol=5e-3, atol=5e-4)
    # the one-document C call (naive_bayes_one) and the numpy path, on every test post
    for text in texts:
        one = loaded._one(text)
        if one is not None:
            want = classifier_module.probabilities(loaded.joint_log_likelihood([text]))[0]
            np.testing.assert_allclose(one[0], want, rtol=1e-12, atol=1e-15)
            assert one[1][0] == want.argmax()
    return float(np.mean(np.asarray(predicted) == splits.test.labels))


def test_equals_sklearn_on_tiny(tiny_corpus: Path, tmp_path: Path) -> None:
    accuracy = _check_equal_to_sklearn(str(tiny_corpus), {"min_df": 1}, tmp_path)
    assert accuracy > 0.9


def test_top_k_and_edge_cases(tiny_corpus: Path) -> None:
    model = fit_classifier(parse({"min_df": 1}), load_splits(str(tiny_corpus)).train)
    idx, p = model.top_k(["orbit shuttle nasa launch", "", "zzzz qqqq"], 3)
    assert idx.shape == (3, 3) and np.all(np.diff(p, axis=1) <= 0)
    assert model.classes[idx[0, 0]] == "sci.space"
    np.testing.assert_allclose(model.predict_proba([""]).sum(), 1.0)  # empty → the prior
    assert model.top_k(["x"], 50)[0].shape == (1, 4)


def test_served_weights_are_centred_float16_and_change_no_answer() -> None:
    rng = np.random.default_rng(0)
    feature_log_prob = np.log(rng.dirichlet(np.full(500, 0.05), size=6))  # 6 classes, 500 terms
    weights = served_weights(feature_log_prob)
    assert weights.dtype == np.float16 and weights.flags.c_contiguous
    assert weights.shape == (500, 6)
    exact = feature_log_prob.T
    # each row's midpoint removed: the largest magnitude is half the row's range
    half_range = (exact.max(axis=1) - exact.min(axis=1)) / 2
    np.testing.assert_allclose(np.abs(weights.astype(np.float64)).max(axis=1), half_range,
                               rtol=1e-3)
    # within-row differences (what explain uses) are kept to float16's rounding
    diffs = weights[:, 0].astype(np.float64) - weights[:, 1]
    assert np.abs(diffs - (exact[:, 0] - exact[:, 1])).max() <= 2 * half_range.max() * 2**-11
    # the same probabilities as the uncentred float64 weights, to float16's rounding
    X = rng.random((50, 500)) * (rng.random((50, 500)) < 0.05)
    prior = np.log(np.full(6, 1 / 6))

    def proba(w: np.ndarray) -> np.ndarray:
        jll = X @ w + prior
        p = np.exp(jll - jll.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    assert np.abs(proba(weights.astype(np.float64)) - proba(exact)).max() < 5e-3
    assert (proba(weights.astype(np.float64)).argmax(axis=1) == proba(exact).argmax(axis=1)).all()


def test_served_weights_beyond_float16_stay_float32() -> None:
    wide = np.array([[0.0, -1e6], [-1.0, -2.0]])  # classes x features; a range over 65,504
    weights = served_weights(wide)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [[0.5, -0.5], [-499_999.0, 499_999.0]])


def test_sparse_times_equals_the_dense_product(monkeypatch: pytest.MonkeyPatch,
                                               word_scanner: str) -> None:
    rng = np.random.default_rng(1)
    X = sp.random(40, 300, density=0.05, format="lil", random_state=2)
    X[[3, 17, 39]] = 0  # empty rows, the last one too
    X[5, :] = rng.random(300)  # a row longer than a block
    X = X.tocsr()
    X.eliminate_zeros()
    weights = rng.normal(size=(300, 7)).astype(np.float16)
    want = X.toarray() @ weights.astype(np.float64)
    for block in (1, 7, 64, 1 << 14):  # blocks of one row, of a few, one block for all
        monkeypatch.setattr(classifier_module, "GATHER_BLOCK", block)
        np.testing.assert_allclose(sparse_times(X, weights), want, rtol=1e-12, atol=1e-12)
    assert sparse_times(X[:0], weights).shape == (0, 7)
    for dtype in (np.float32, np.float64):  # older artifacts: scipy's product, same numbers
        np.testing.assert_allclose(sparse_times(X, weights.astype(dtype)), want, rtol=1e-5)


def test_weighted_sum_in_c_is_scipys_product_bit_for_bit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """serving/_wordscan.c's weighted_sum converts each float16 itself (every one of the 65,536
    bit patterns: subnormals, -0, infinities, NaNs) and sums in scipy's order: the same bits as
    the numpy path's gather and scipy product."""
    from serving import hashtable
    from serving.classifier import weighted_sum

    if hashtable.COMPILED is None:
        pytest.fail("serving._wordscan is not built (bash scripts/setup.sh)")
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(-1, 16)
    X = sp.random(300, every.shape[0], density=0.01, format="csr", random_state=3)
    X.data = np.random.default_rng(3).normal(size=X.data.size)
    X.data[::7] = 0.0  # an explicit zero times inf is NaN in both
    got = sparse_times(X, every)
    with monkeypatch.context() as numpy_only:
        numpy_only.setattr(hashtable, "COMPILED", None)
        with np.errstate(invalid="ignore"):
            want = sparse_times(X, every)
    assert got.tobytes() == want.tobytes()
    whole = sp.csr_matrix(np.ones((1, every.shape[0])))
    with np.errstate(invalid="ignore", over="ignore"):
        dense = np.ones(every.shape[0]) @ every.astype(np.float64)
    # float16 sums are exact in float64 (2**-24 to 2**16 is 40 bits), whatever the order
    np.testing.assert_array_equal(sparse_times(whole, every)[0], dense)  # (NaN == NaN here)
    C = hashtable.COMPILED
    bits = every.view(np.uint16)
    out = np.zeros((1, 16))
    for indptr, indices in (([0, 2], [0, every.shape[0]]),  # a feature past the weights
                            ([0, 2], [0, -1]),  # a negative one
                            ([0, 3], [0, 1]),  # indptr past the indices
                            ([1, 2], [0, 1])):  # not starting at 0
        with pytest.raises(ValueError):
            C.weighted_sum(np.array(indptr, np.int64), np.array(indices, np.int32),
                           np.ones(len(indices)), bits, 16, out)
    with pytest.raises(ValueError):  # rows falling
        C.weighted_sum(np.array([0, 2, 1, 2], np.int64), np.array([0, 1], np.int32),
                       np.ones(2), bits, 16, np.zeros((3, 16)))
    with pytest.raises(ValueError):  # out of the wrong size
        C.weighted_sum(np.array([0, 1], np.int64), np.array([0], np.int32), np.ones(1), bits,
                       16, np.zeros((1, 15)))
    with pytest.raises(ValueError):  # weights not a whole number of rows
        C.weighted_sum(np.array([0, 1], np.int64), np.array([0], np.int32), np.ones(1),
                       bits[:-1, :].ravel()[:-3], 16, out)
    assert weighted_sum(np.array([0]), np.zeros(0, np.int32), np.zeros(0), every).shape == (0, 16)


@pytest.mark.parametrize("settings", [
    {}, {"sublinear_tf": True}, {"norm": "l1"}, {"norm": None}, {"binary": True}, {"idf": None},
    {"sublinear_tf": True, "norm": "l1", "binary": True}, {"idf": None, "norm": None}])
def test_one_document_in_one_c_call_is_the_numpy_path(tiny_corpus: Path, settings: dict) -> None:
    """``TextClassifier._one`` (serving/_wordscan.c naive_bayes_one: weights, product, softmax,
    order) against the numpy one-document path, for every TF-IDF setting it reads."""
    from serving import hashtable

    if hashtable.COMPILED is None:
        pytest.fail("serving._wordscan is not built (bash scripts/setup.sh)")
    splits = load_splits(str(tiny_corpus))
    model = fit_classifier(parse({"min_df": 1}), splits.train)
    assert model.log_prob.dtype == np.float16 and model.features.hashes is not None
    for name, value in settings.items():
        setattr(model.features.vectorizer, name, value)
    texts = [*splits.test.texts, *splits.train.texts[:20], "", "zzzz qqqq",
             "orbit orbit orbit shuttle shuttle nasa", "Orbit\n\nORBIT orbit. x@y.com"]
    for text in texts:
        one = model._one(text)
        assert one is not None
        proba, order = one
        expected = classifier_module.probabilities(model.joint_log_likelihood([text]))[0]
        np.testing.assert_allclose(proba, expected, rtol=1e-12, atol=1e-15)
        assert order.tolist() == np.argsort(-expected, kind="stable").tolist()
        for k in (1, 3, 50):
            idx, p = model.top_k([text], k)
            want_idx, want_p = classifier_module.best_k(expected[None, :], k)
            assert idx.tolist() == want_idx.tolist()
            np.testing.assert_allclose(p, want_p, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.predict_proba([text]), expected[None, :], rtol=1e-12,
                                   atol=1e-15)
        assert model.predict([text]) == [model.classes[int(np.argmax(expected))]]


def test_naive_bayes_one_refuses_arrays_that_do_not_fit() -> None:
    from serving import hashtable

    C = hashtable.COMPILED
    if C is None:
        pytest.fail("serving._wordscan is not built (bash scripts/setup.sh)")
    bits = np.zeros((10, 4), dtype=np.uint16)
    prior, idf = np.zeros(4), np.ones(10)

    def call(indices: list[int], counts: np.ndarray | None = None, idf: object = idf,
             prior: np.ndarray = prior, weights: np.ndarray = bits, norm: int = 2,
             proba: np.ndarray | None = None, order: np.ndarray | None = None) -> None:
        C.naive_bayes_one(np.array(indices, np.int32),
                          np.ones(len(indices)) if counts is None else counts, idf, False,
                          True, norm, weights, 4, prior,
                          np.zeros(4) if proba is None else proba,
                          np.zeros(4, np.int64) if order is None else order)

    call([0, 9])
    call([], idf=b"")
    for bad in ({"indices": [0, 10]}, {"indices": [-1]}, {"indices": [0], "counts": np.ones(2)},
                {"indices": [0], "idf": np.ones(9)}, {"indices": [0], "prior": np.zeros(3)},
                {"indices": [0], "weights": bits.ravel()[:-1]}, {"indices": [0], "norm": 3},
                {"indices": [0], "proba": np.zeros(5)},
                {"indices": [0], "order": np.zeros(4, np.int32)},
                {"indices": [0], "counts": np.ones(1, np.float32)}):
        with pytest.raises(ValueError):
            call(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # counts are written: a read-only buffer is refused
        call([0], counts=b"\0" * 8)  # type: ignore[arg-type]
    proba, order = np.zeros(4), np.zeros(4, np.int64)
    C.naive_bayes_one(np.zeros(0, np.int32), np.zeros(0), b"", False, False, 2, bits, 4,
                      np.log([0.1, 0.4, 0.4, 0.1]), proba, order)
    np.testing.assert_allclose(proba, [0.1, 0.4, 0.4, 0.1])  # no word: the prior
    assert order.tolist() == [1, 2, 0, 3]  # ties in class order


def test_older_float32_artifact_loads_and_answers_the_same(tiny_corpus: Path,
                                                           tmp_path: Path) -> None:
    model = fit_classifier(parse({"min_df": 1}), load_splits(str(tiny_corpus)).train)
    texts = load_splits(str(tiny_corpus)).test.texts
    uncentred = np.ascontiguousarray(model.log_prob, dtype=np.float32)
    # what earlier versions wrote: float32, not centred (a row shift changes no answer)
    old = TextClassifier(model.features, uncentred - 3.0, model.class_log_prior, model.classes)
    old.save(tmp_path / "old")
    loaded = TextClassifier.load(tmp_path / "old")
    assert loaded.log_prob.dtype == np.float32
    assert loaded.predict(texts) == model.predict(texts)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts),
                               atol=1e-6)


def test_cleaner_round_trip_keeps_stopwords(tmp_path: Path) -> None:
    cleaner = make_cleaner(parse({"stopwords": "none"}), lemmatize=False)
    save_cleaner(cleaner, tmp_path / "c.json")
    assert load_cleaner(tmp_path / "c.json").stop_words_ == []


@pytest.mark.data
@pytest.mark.slow
def test_equals_sklearn_on_the_whole_20news_test_split(tmp_path: Path) -> None:
    need_real_data()
    accuracy = _check_equal_to_sklearn(str(DATA_TGZ), {}, tmp_path)
    assert accuracy >= 0.85


def test_half_float_weights_give_the_same_predictions(tiny_corpus: Path) -> None:
    # log_prob may be stored as float16: the batch path cannot hand it to scipy's product.
    from dataclasses import replace

    model = fit_classifier(parse({"min_df": 1}), load_splits(str(tiny_corpus)).train)
    half = replace(model, log_prob=model.log_prob.astype(np.float16))
    texts = [*load_splits(str(tiny_corpus)).test.texts, "", "zzzz qqqq"] * 7  # > 256 rows
    batch = half.joint_log_likelihood(texts)
    np.testing.assert_allclose(batch, model.joint_log_likelihood(texts), rtol=0, atol=0.05)
    assert half.predict(texts) == model.predict(texts)
    for i in (0, len(texts) - 2, len(texts) - 1):  # the one-document path gives the same
        np.testing.assert_allclose(half.joint_log_likelihood([texts[i]])[0], batch[i],
                                   rtol=0, atol=1e-3)


def test_float16_that_flips_a_prediction_is_not_kept(monkeypatch: pytest.MonkeyPatch,
                                                     tiny_corpus: Path) -> None:
    splits = load_splits(str(tiny_corpus))
    kept = fit_classifier(parse({"min_df": 1}), splits.train, splits.test.texts)
    assert kept.log_prob.dtype == np.float16  # no prediction of the tiny test split moves
    real = classifier_module.served_weights

    def flipping(feature_log_prob: np.ndarray, dtype: type = np.float16) -> np.ndarray:
        weights = real(feature_log_prob, dtype)
        if dtype is np.float16:  # as if rounding had swapped the first two classes
            weights = np.ascontiguousarray(weights[:, ::-1])
        return weights

    monkeypatch.setattr(classifier_module, "served_weights", flipping)
    model = fit_classifier(parse({"min_df": 1}), splits.train, splits.test.texts)
    assert model.log_prob.dtype == np.float32  # float32 centred: scikit-learn's predictions
    assert model.predict(splits.test.texts) == [
        model.classes[i] for i in np.argmax(model.features.transform(splits.test.texts)
                                            @ model.log_prob + model.class_log_prior, axis=1)]
    reference = fit_classifier(parse({"min_df": 1}), splits.train)  # no check: float16 kept
    assert reference.log_prob.dtype == np.float16
