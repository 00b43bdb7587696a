"""serving/explain.py: the explanation weights against a direct numpy computation, the index →
term names against the vocabulary, and (real data) that removing a post's top explained terms
lowers its label's probability."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from serving.artifact import Model
from serving.classifier import TextClassifier
from serving.explain import Explainer, contributions, strongest, term_names
from serving.termindex import TermIndex
from serving.vectorize import TermVectorizer
from tests.conftest import DATA_TGZ


@pytest.fixture(scope="module")
def classifier(tiny_model_dir: Path) -> TextClassifier:
    return Model.load(tiny_model_dir).classifier


DOCS = ["NASA will launch the shuttle into orbit; the moon mission is ready",
        "My car engine and brake need a dealer, the transmission too",
        "the god of the bible and the church, faith and prayer",
        "pixel shading and texture render the bitmap image",
        "nothing here is known: zzz qqq"]


def direct(classifier: TextClassifier, text: str) -> tuple[int, int, dict[int, float]]:
    """Label, runner-up and every term's weight, computed the long way on a dense row."""
    x = classifier.features.transform([text]).toarray()[0]
    weights = classifier.log_prob.astype(np.float64)  # the stored float16 values, exactly
    jll = x @ weights + classifier.class_log_prior
    order = np.argsort(-jll, kind="stable")
    c, r = int(order[0]), int(order[1])
    w = x * (weights[:, c] - weights[:, r])
    return c, r, {j: float(w[j]) for j in np.flatnonzero(x)}


def test_weights_equal_direct_numpy(classifier: TextClassifier, tiny_model_dir: Path) -> None:
    explainer = Explainer(classifier)
    names = (tiny_model_dir / "classifier" / "vocab.txt").read_text().split("\n")[:-1]
    for batch in ([DOCS[0]], DOCS):  # the one-document path and the sparse-matrix path
        idx, p, explained = explainer.top_k(batch, 2, 50)
        plain_idx, plain_p = classifier.top_k(batch, 2)
        np.testing.assert_array_equal(idx, plain_idx)
        np.testing.assert_allclose(p, plain_p, rtol=0, atol=1e-12)
        for text, row, explanation in zip(batch, idx, explained, strict=True):
            c, r, weights = direct(classifier, text)
            assert row[0] == c
            assert explanation["versus"] == classifier.classes[r]
            want = sorted(((w, names[j]) for j, w in weights.items() if w > 0), reverse=True)
            got = [(t["weight"], t["term"]) for t in explanation["terms"]]
            assert [t for _, t in got] == [t for _, t in want][:50]
            np.testing.assert_allclose([w for w, _ in got], [w for w, _ in want][:50],
                                       atol=1e-6)


def test_weights_and_prior_sum_to_the_log_odds(classifier: TextClassifier) -> None:
    X = classifier.features.transform(DOCS[:4])
    jll = classifier.sparse_joint_log_likelihood(X)
    order = np.argsort(-jll, axis=1, kind="stable")
    label, versus = order[:, 0], order[:, 1]
    w = contributions(X.indptr, X.indices, X.data, classifier.log_prob, label, versus)
    per_doc = np.add.reduceat(w, X.indptr[:-1])
    prior = classifier.class_log_prior
    rows = np.arange(4)
    np.testing.assert_allclose(per_doc + prior[label] - prior[versus],
                               jll[rows, label] - jll[rows, versus], rtol=1e-9)


def test_top_n_and_no_terms() -> None:
    assert strongest(np.array([0.5, -1.0, 2.0, 0.0, 1.0]), 2).tolist() == [2, 4]
    assert strongest(np.array([0.5, -1.0, 2.0]), 10).tolist() == [2, 0]
    assert strongest(np.array([-0.5, 0.0]), 3).size == 0
    assert strongest(np.zeros(0), 3).size == 0


def test_document_without_known_terms(classifier: TextClassifier) -> None:
    idx, _p, explained = Explainer(classifier).top_k(["zzz qqq"], 3, 5)
    assert explained[0]["terms"] == [] and explained[0]["versus"] in classifier.classes
    assert idx.shape == (1, 3)


def test_top_k_one_still_has_a_runner_up(classifier: TextClassifier) -> None:
    idx, p, explained = Explainer(classifier).top_k([DOCS[0]], 1, 3)
    assert idx.shape == p.shape == (1, 1)
    assert explained[0]["versus"] == classifier.classes[classifier.top_k([DOCS[0]], 2)[0][0, 1]]
    assert 1 <= len(explained[0]["terms"]) <= 3


def test_term_names_from_the_compact_index() -> None:
    terms = ["orbit", "nasa", "nasa launch", "launch", "moon", "orbit moon", "car"]
    compact = TermVectorizer(terms=None, ngram_range=(1, 2), n_features=len(terms),
                             index=TermIndex.build(terms, (1, 2)))
    assert compact.terms is None and compact.index is not None and compact.index.compact
    names = term_names(compact)
    assert names(np.arange(len(terms))) == terms
    assert names(np.array([5, 0, 2])) == ["orbit moon", "orbit", "nasa launch"]
    trigrams = ["a b c", "b c", "c"]
    long = TermVectorizer(terms=None, ngram_range=(1, 3), n_features=3,
                          index=TermIndex.build(trigrams, (1, 3)))
    assert term_names(long)(np.array([2, 0])) == ["c", "a b c"]


def test_term_names_of_the_saved_model(tiny_model_dir: Path) -> None:
    vectorizer = Model.load(tiny_model_dir).classifier.features.vectorizer
    vocab = (tiny_model_dir / "classifier" / "vocab.txt").read_text().split("\n")[:-1]
    assert vectorizer.terms is None  # served from the compact index
    assert term_names(vectorizer)(np.arange(len(vocab))) == vocab


def test_one_class_model_has_no_rival(classifier: TextClassifier) -> None:
    one = TextClassifier(classifier.features, classifier.log_prob[:, :1].copy(),
                         classifier.class_log_prior[:1].copy(), classifier.classes[:1])
    idx, p, explained = Explainer(one).top_k([DOCS[0]], 3, 5)
    assert idx.tolist() == [[0]] and p.tolist() == [[1.0]]
    assert explained == [{"versus": None, "terms": []}]


def test_cost_follows_the_document_not_the_vocabulary() -> None:
    """contributions allocates per stored value: a 10-million-column row costs its 3 terms
    (a dense row or a column of log_prob would be 40-80 MB)."""
    import tracemalloc

    X = sp.csr_matrix((np.ones(3), np.array([1, 5, 9_999_999]), np.array([0, 3])),
                      shape=(1, 10_000_000))
    log_prob = np.zeros((10_000_000, 2), dtype=np.float32)  # pages never touched stay unmapped
    log_prob[9_999_999] = [1.0, -1.0]
    tracemalloc.start()
    try:
        w = contributions(X.indptr, X.indices, X.data, log_prob, np.array([0]), np.array([1]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert w.tolist() == [0.0, 0.0, 2.0]
    assert peak < 100_000, peak


# --- real data: removing the top explained terms lowers the label's probability ---------------

POSTS = 12


def _test_posts(n: int) -> list[str]:
    """The first post of each of the first ``n`` newsgroups in the test split (sorted names)."""
    with tarfile.open(DATA_TGZ) as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and m.name.startswith("20news-bydate-test/")),
                         key=lambda m: m.name)
        first: dict[str, tarfile.TarInfo] = {}
        for member in members:
            first.setdefault(member.name.split("/")[1], member)
        picked = [first[g] for g in sorted(first)[:n]]
        return [tar.extractfile(m).read().decode("latin-1") for m in picked]  # type: ignore[union-attr]


def _without(text: str, terms: list[str]) -> str:
    words = {w for term in terms for w in term.split(" ")}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words))) + r")\b", re.I)
    return pattern.sub(" ", text)


@pytest.mark.data
def test_removing_top_terms_lowers_the_label_probability(real_model_dir: Path) -> None:
    classifier = Model.load(real_model_dir).classifier
    explainer = Explainer(classifier)
    posts = _test_posts(POSTS)
    idx, p, explained = explainer.top_k(posts, 1, 5)
    for post, label, prob, explanation in zip(posts, idx[:, 0], p[:, 0], explained, strict=True):
        terms = [t["term"] for t in explanation["terms"]]
        assert len(terms) == 5
        proba = classifier.predict_proba([_without(post, terms)])[0]
        assert proba[label] < prob, (classifier.classes[label], terms, prob, proba[label])


def test_term_budget_is_checked_before_naming(classifier: TextClassifier) -> None:
    from serving.errors import PayloadTooLarge

    explainer = Explainer(classifier, names=lambda f: pytest.fail("named despite the budget"))
    with pytest.raises(PayloadTooLarge, match="custom attribute explain"):
        explainer.top_k(DOCS[:2], 3, 5, max_terms=3)
    listed = sum(len(e["terms"]) for e in Explainer(classifier).top_k(DOCS[:2], 3, 5)[2])
    assert len(Explainer(classifier).top_k(DOCS[:2], 3, 5, max_terms=listed)[2]) == 2
