"""Why this label: each document's terms ranked by how much they pushed it to its label.

Computed exactly from the served naive Bayes weights, no sampling and no second model. With
``x`` the document's TF-IDF row and ``log_prob[j, c]`` the served weights (the classifier's
``feature_log_prob_``, stored as float16 with a per-feature constant removed:
:func:`serving.classifier.served_weights`; the constant cancels in every difference below),
the joint log-likelihood is ``jll[c] = prior[c] + sum_j x[j] * log_prob[j, c]``. For the
predicted label ``c`` and the runner-up ``r`` (the second most probable class)::

    log(p[c] / p[r]) = jll[c] - jll[r] = (prior[c] - prior[r]) + sum_j w[j]
    w[j] = x[j] * (log_prob[j, c] - log_prob[j, r])

so the weights ``w`` split the label's winning margin over its closest rival exactly among the
document's terms (plus the class-prior difference, which no term owns). A term with ``w > 0``
pushed the document towards its label; the ``explain=N`` answer lists the N largest of those.

Why the runner-up and not the mean over classes: the runner-up is the decision the model
actually made (the label against the class that came closest). Against the mean, a word shared
by the label and its rival (``god`` between alt.atheism and soc.religion.christian,
``windows`` between comp.os.ms-windows.misc and comp.windows.x) ranks high though it does
nothing to separate them, and the weights would sum to the distance from an average class,
which no prediction is about. A model with one class has no rival: its explanations are empty
(``versus`` null).

Cost: one gather of two weights per non-zero term of the document (vectorised over the sparse
row, never the vocabulary) and a partial sort of those; the index → term names come from
:func:`term_names`, built once at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from serving.classifier import TextClassifier, best_k, probabilities
from serving.errors import PayloadTooLarge
from serving.vectorize import TermVectorizer

WEIGHT_DECIMALS = 6
TermNames = Callable[[np.ndarray], list[str]]


def term_names(vectorizer: TermVectorizer) -> TermNames:
    """A function giving the vocabulary terms (words, ``"w1 w2"`` bigrams) of feature indices.

    The one place that maps index → term, so the vocabulary's storage can change behind it.
    A vectorizer that holds its terms answers from them. A served model holds only the compact
    :class:`~serving.termindex.TermIndex` (words + int64 bigram keys) and its one int64 code
    per feature (:meth:`~serving.termindex.TermIndex.feature_codes`: ``-1 - word id`` for a
    word, the bigram key ``id(a) * n_words + id(b)`` for a bigram; saved in the artifact and
    memory-mapped, built at load for older artifacts), plus each word's byte offsets in the
    index's word list (8 bytes a word, built in the gunicorn master, shared by the workers).
    """
    if vectorizer.terms is not None:
        terms = vectorizer.terms
        return lambda features: [terms[i] for i in features.tolist()]
    index = vectorizer.index
    assert index is not None
    if index.terms is not None:  # n-grams longer than 2: a plain dict of terms
        by_feature = sorted(index.terms, key=index.terms.__getitem__)
        return lambda features: [by_feature[i] for i in features.tolist()]
    # One int64 code a feature (saved in the artifact, memory-mapped: only the pages read are
    # resident) and each word's start and end in the index's newline-separated word list (8
    # bytes a word; a word is decoded only when named; no word dict or string objects).
    lines = index.word_lines
    ends = np.flatnonzero(np.frombuffer(lines, dtype=np.uint8) == 0x0A).astype(np.int32)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int32)
    n_words = index.n_words
    if ends.size != n_words:
        raise ValueError("the term index's word list does not match its word ids")
    codes = index.feature_codes()
    if codes.size != vectorizer.n_features:
        raise ValueError("the term index does not name every feature")

    def word(i: int) -> str:
        return lines[starts[i]:ends[i]].decode()

    def names(features: np.ndarray) -> list[str]:
        out = []
        for code in codes[features].tolist():
            if code < 0:
                out.append(word(-1 - code))
            else:
                first, second = divmod(code, n_words)
                out.append(word(first) + " " + word(second))
        return out

    return names


def contributions(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                  log_prob: np.ndarray, label: np.ndarray, versus: np.ndarray) -> np.ndarray:
    """``w`` for every stored value of a CSR matrix (aligned with ``data``): the value times
    ``log_prob[term, label] - log_prob[term, versus]`` of its row's label and runner-up."""
    rows = np.repeat(np.arange(label.size), np.diff(indptr))
    # In float64: two float16 (or float32) weights subtracted in their own type would be
    # rounded again; the joint log-likelihoods are float64 sums of the same stored weights.
    return data * (log_prob[indices, label[rows]].astype(np.float64)
                   - log_prob[indices, versus[rows]])


def strongest(weights: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest positive ``weights``, largest first."""
    positive = np.flatnonzero(weights > 0)
    if positive.size > n:
        positive = positive[np.argpartition(-weights[positive], n - 1)[:n]]
    return positive[np.argsort(-weights[positive], kind="stable")]


class Explainer:
    """The classifier's top-k answer with each document's explanation."""

    def __init__(self, classifier: TextClassifier, names: TermNames | None = None) -> None:
        self.classifier = classifier
        self.names = names or term_names(classifier.features.vectorizer)

    def _rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                   np.ndarray]:
        """CSR parts of the documents' TF-IDF rows and their joint log-likelihoods."""
        classifier = self.classifier
        if len(texts) == 1:  # as TextClassifier.joint_log_likelihood: no sparse matrix
            indices, data = classifier.features.one(texts[0])
            rows = np.take(classifier.log_prob, indices, axis=0)
            jll = (data @ rows + classifier.class_log_prior)[None, :]
            return np.array([0, indices.size]), indices, data, jll
        X = classifier.features.weighted(texts)
        return X.indptr, X.indices, X.data, classifier.sparse_joint_log_likelihood(X)

    def top_k(self, texts: Sequence[str], k: int, n: int, max_terms: int | None = None,
              ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """What :meth:`TextClassifier.top_k` answers (the same numbers) and, per document,
        ``{"versus": runner-up, "terms": [{"term", "weight"}, ...]}`` with at most ``n``
        terms, largest weight first. More than ``max_terms`` terms in all is a 413, raised
        before any term is named (it bounds the answer and the objects built for it)."""
        classes = self.classifier.classes
        indptr, indices, data, jll = self._rows(texts)
        top_idx, top_p = best_k(probabilities(jll), max(k, 2))
        if top_idx.shape[1] < 2:  # one class: nothing to tell it from
            return top_idx, top_p, [{"versus": None, "terms": []} for _ in texts]
        weights = contributions(indptr, indices, data, self.classifier.log_prob,
                                top_idx[:, 0], top_idx[:, 1])
        if max_terms is not None:
            positive = np.concatenate(([0], np.cumsum(weights > 0)))
            listed = int(np.minimum(positive[indptr[1:]] - positive[indptr[:-1]], n).sum())
            if listed > max_terms:
                raise PayloadTooLarge(
                    f"the explanations hold {listed} terms, more than the response limit "
                    f"leaves room for ({max(max_terms, 0)}); ask for fewer terms (custom "
                    "attribute explain) or send fewer records per request")
        explanations = []
        for row, runner_up in enumerate(top_idx[:, 1].tolist()):
            start, end = int(indptr[row]), int(indptr[row + 1])
            picked = strongest(weights[start:end], n)
            terms = self.names(indices[start:end][picked])
            values = np.round(weights[start:end][picked], WEIGHT_DECIMALS).tolist()
            explanations.append({
                "versus": classes[runner_up],
                "terms": [{"term": t, "weight": w} for t, w in zip(terms, values, strict=True)],
            })
        k = min(k, top_idx.shape[1])
        return top_idx[:, :k], top_p[:, :k], explanations
