from pathlib import Path

import numpy as np
import pytest
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from serving.classifier import TextClassifier
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
    # Our weights are float32 (scikit-learn's float64): probabilities agree to ~1e-4 absolute,
    # predictions exactly.
    for model in (ours, loaded):
        proba = model.predict_proba(texts)
        np.testing.assert_allclose(proba, expected, rtol=5e-3, atol=5e-4)
        predicted = [splits.train.label_names.index(c) for c in model.predict(texts)]
        assert predicted == list(reference.predict(texts))
        # the one-document path gives the batch numbers
        for i in range(0, len(texts), max(1, len(texts) // 25)):
            np.testing.assert_allclose(model.predict_proba([texts[i]])[0], expected[i],
                                       rtol=5e-3, atol=5e-4)
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
