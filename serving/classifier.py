"""The served text classifier: cleaning → TF-IDF → multinomial naive Bayes, in serving layout.

scikit-learn's ``MultinomialNB.predict`` on one sparse row spends most of its time copying the
transposed (features x classes) weight matrix. Here the weights are stored once in that layout
(C-contiguous ``log_prob[feature, class]``) so one document costs a gather of its few rows.

The weights are float16, each feature's row centred (:func:`served_weights`: a quarter of
scikit-learn's float64 memory; on 20news no test prediction changes and probabilities move by
at most 4e-4), and are memory-mapped read-only from the artifact: loading copies nothing, and
every process serving the same model directory (the forked workers, other containers on the
host) shares one copy through the page cache. Older artifacts (float32 or float64 weights,
not centred) load and serve as they are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving import hashtable, jsondoc
from serving.text import Cleaner
from serving.textfeatures import TextFeatures
from serving.vectorize import Rows, TermVectorizer

if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.naive_bayes import MultinomialNB




def probabilities(jll: np.ndarray) -> np.ndarray:
    """Class probabilities from joint log-likelihoods (softmax per row, in place)."""
    jll -= jll.max(axis=1, keepdims=True)
    np.exp(jll, out=jll)
    jll /= jll.sum(axis=1, keepdims=True)
    return jll


def served_weights(feature_log_prob: np.ndarray, dtype: type = np.float16) -> np.ndarray:
    """MultinomialNB's ``feature_log_prob_`` (classes x features) in serving layout: features x
    classes, C-contiguous, each feature's row minus the midpoint of its range, as float16.

    Centring changes no answer: with ``jll[c] = prior[c] + sum_j x[j] * log_prob[j, c]``, a
    constant ``m[j]`` added to row ``j`` adds ``sum_j x[j] * m[j]`` to every class alike, so the
    argmax, the softmax probabilities and every within-row difference ``log_prob[j, c] -
    log_prob[j, r]`` (all ``explain`` uses, serving/explain.py) stay the same; only the
    absolute joint log-likelihoods shift, and nothing reads those. It makes float16 precise
    enough: float16 keeps 11 significant bits, so its rounding error grows with the magnitude,
    and the midpoint is the shift that makes the largest magnitude smallest (half the row's
    range: at most ~4 on 20news instead of ~17 before centring; error at most 2**-10 ≈ 0.001
    per weight, against 0.004 uncentred, which changed 8 predictions of the test split). A row
    whose range float16 cannot hold (over 65,504, not a weight smoothing produces) stays
    float32 for the whole matrix; ``dtype`` float32 asks for that directly.
    """
    weights = np.asarray(feature_log_prob, dtype=np.float64).T
    centred = weights - (weights.max(axis=1, keepdims=True)
                         + weights.min(axis=1, keepdims=True)) / 2 if weights.size else weights
    with np.errstate(over="ignore"):
        stored = np.ascontiguousarray(centred, dtype=dtype)
    if not np.isfinite(stored).all():
        return np.ascontiguousarray(centred, dtype=np.float32)
    return stored


# naive_bayes_one's code for TermVectorizer.norm.
_NORMS = {None: 0, "l1": 1, "l2": 2}

# Stored values whose weight rows are gathered at a time in :func:`sparse_times`: 10 MB of
# float64 rows at 20 classes, whatever the batch (1,000 posts hold ~110,000 values).
GATHER_BLOCK = 1 << 16


def weighted_sum(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """CSR rows (``indptr``, ``indices``, ``data``) times float16 ``weights`` in float64, in C
    (``serving/_wordscan.c``): each float16 weight converted as it is used, nothing gathered or
    copied; the numbers of :func:`sparse_times`' scipy product, bit for bit."""
    assert hashtable.COMPILED is not None and weights.dtype == np.float16
    out = np.zeros((indptr.size - 1, weights.shape[1]), dtype=np.float64)
    hashtable.COMPILED.weighted_sum(  # (a plain view: a memmap's own costs ~5 us to make)
        np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int32),
        np.asarray(data, dtype=np.float64), np.asarray(weights).view(np.uint16),
        weights.shape[1], out)
    return out


def sparse_times(X: sparse.csr_matrix | Rows, weights: np.ndarray) -> np.ndarray:
    """``X @ weights`` as float64 without converting ``weights`` (the mapped file stays read in
    place). scipy's product converts the dense operand to the sparse matrix's dtype and has no
    float16: for float16 weights the weight rows of a block of stored values are gathered
    (``np.take``: ~4x faster than fancy indexing here) as float64, and a sparse matrix with one
    column per gathered row sums them per document (one C loop; the one-document path's
    arithmetic, in float64)."""
    if weights.dtype != np.float16:
        # a float64 X would copy all of a float32 weights matrix per request; cast X instead
        X = (X.tocsr() if isinstance(X, Rows) else X).astype(weights.dtype, copy=False)
        return np.asarray(X @ weights, dtype=np.float64)
    if hashtable.COMPILED is not None:
        return weighted_sum(X.indptr, X.indices, X.data, weights)
    import scipy.sparse as sp

    n_rows = X.shape[0]
    out = np.zeros((n_rows, weights.shape[1]), dtype=np.float64)
    indptr, indices, data = X.indptr, X.indices, X.data
    first = 0
    while first < n_rows:
        # rows [first, last) hold at most GATHER_BLOCK values (or are one longer row)
        last = int(np.searchsorted(indptr, indptr[first] + GATHER_BLOCK, side="right")) - 1
        last = min(max(last, first + 1), n_rows)
        start, end = int(indptr[first]), int(indptr[last])
        if end > start:
            rows = np.take(weights, indices[start:end], axis=0).astype(np.float64)
            per_doc = sp.csr_matrix(
                (data[start:end].astype(np.float64, copy=False), np.arange(end - start),
                 indptr[first:last + 1] - start), shape=(last - first, end - start))
            out[first:last] = per_doc @ rows
        first = last
    return out


def best_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (best first; ties keep class order) and probabilities of the ``k`` best classes."""
    k = max(1, min(k, proba.shape[1]))
    idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    # plain indexing: what np.take_along_axis gives, without its per-call index building
    return idx, proba[np.arange(proba.shape[0])[:, None], idx]


@dataclass
class TextClassifier:
    features: TextFeatures
    log_prob: np.ndarray  # (n_features, n_classes), C-contiguous, float16 (older: 32, 64)
    class_log_prior: np.ndarray  # (n_classes,)
    classes: list[str]

    @classmethod
    def from_fitted(
        cls, cleaner: Cleaner, vectorizer: TermVectorizer, nb: MultinomialNB,
        class_names: Sequence[str], keep_predictions_of: Sequence[str] = (),
    ) -> TextClassifier:
        """The fitted pipeline in serving layout. Its weights are float16 (:func:`served_weights`)
        unless they would change the prediction for one of ``keep_predictions_of`` (training
        passes the test split) from what scikit-learn's float64 weights give: then float32,
        centred too, so the reported test figures are scikit-learn's exactly."""
        features = TextFeatures(cleaner, vectorizer)
        prior = np.asarray(nb.class_log_prior_, dtype=np.float64)
        weights = served_weights(nb.feature_log_prob_)
        if weights.dtype == np.float16 and len(keep_predictions_of):
            X = features.transform(keep_predictions_of)
            exact = sparse_times(X, np.ascontiguousarray(nb.feature_log_prob_.T, np.float64))
            half = sparse_times(X, weights)
            if ((exact + prior).argmax(axis=1) != (half + prior).argmax(axis=1)).any():
                weights = served_weights(nb.feature_log_prob_, np.float32)
        return cls(features=features, log_prob=weights, class_log_prior=prior,
                   classes=[class_names[int(c)] for c in nb.classes_])

    def joint_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:  # no sparse matrix for one document; same numbers
            features, values = self.features.one(texts[0])
            if hashtable.COMPILED is not None and self.log_prob.dtype == np.float16:
                return weighted_sum(np.array([0, features.size], dtype=np.int64), features,
                                    values, self.log_prob) + self.class_log_prior
            # np.take: the same rows as log_prob[features], ~2x faster for a few hundred rows
            rows = np.take(self.log_prob, features, axis=0)
            return (values @ rows + self.class_log_prior)[None, :]
        return self.sparse_joint_log_likelihood(self.features.weighted(texts))

    def sparse_joint_log_likelihood(self, X: sparse.csr_matrix | Rows) -> np.ndarray:
        """The joint log-likelihoods of TF-IDF rows (the one product every path shares)."""
        return sparse_times(X, self.log_prob) + self.class_log_prior

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        one = self._only(texts)
        if one is not None:
            return one[0][None, :]
        return probabilities(self.joint_log_likelihood(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        one = self._only(texts)
        if one is not None:
            return [self.classes[int(one[1][0])]]
        best = self.joint_log_likelihood(texts).argmax(axis=1)
        return [self.classes[i] for i in best]

    def top_k(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (best first) and probabilities of the ``k`` most likely classes per text."""
        one = self._only(texts)
        if one is not None:
            proba, order = one
            best = order[:max(1, min(k, order.size))]
            return best[None, :], proba[best][None, :]
        return best_k(self.predict_proba(texts), k)

    def _only(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`_one` of a single text; None for several or where that path does not apply."""
        return self._one(texts[0]) if len(texts) == 1 else None

    def _one(self, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(probabilities, classes best first) of one document in one C call after the scan
        (``naive_bayes_one``: the weights, the product, softmax and order without ~20 numpy
        calls); None where that call does not apply (no C extension, weights not float16, no
        word tables, a document longer than a group): then the numpy path answers."""
        scanner = hashtable.COMPILED
        idf = self.features.vectorizer.idf
        if (scanner is None or self.log_prob.dtype != np.float16 or self.features.hashes is None
                or self.class_log_prior.dtype != np.float64
                or (idf is not None and (idf.dtype != np.float64 or not idf.flags.c_contiguous))):
            return None
        found = self.features._counts(text)
        if found is None:
            return None
        indices, counts = found
        vectorizer = self.features.vectorizer
        n_classes = self.class_log_prior.size
        proba = np.empty(n_classes, dtype=np.float64)
        order = np.empty(n_classes, dtype=np.int64)
        scanner.naive_bayes_one(
            np.asarray(indices, dtype=np.int32), np.asarray(counts, dtype=np.float64),
            b"" if idf is None else idf, vectorizer.binary, vectorizer.sublinear_tf,
            _NORMS[vectorizer.norm], self.log_prob.view(np.uint16), n_classes,
            self.class_log_prior, proba, order)
        return proba, order

    # Persistence (plain JSON, text and .npy: nothing executes code on load).
    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = self.features.save(directory)
        np.save(directory / "log_prob.npy", self.log_prob, allow_pickle=False)
        np.save(directory / "class_log_prior.npy", self.class_log_prior, allow_pickle=False)
        (directory / "classes.json").write_text(json.dumps(self.classes, indent=1) + "\n")
        written += [directory / n for n in ("log_prob.npy", "class_log_prior.npy", "classes.json")]
        return written

    @classmethod
    def load(cls, directory: Path) -> TextClassifier:
        classes = jsondoc.loads((directory / "classes.json").read_bytes(), "classes.json")
        features = TextFeatures.load(directory)
        # Mapped, not read: pages come from the page cache, shared by every process.
        log_prob = np.load(directory / "log_prob.npy", mmap_mode="r", allow_pickle=False)
        prior = np.load(directory / "class_log_prior.npy", allow_pickle=False)
        if log_prob.shape != (features.n_features, len(classes)) or prior.shape != (
            len(classes),
        ):
            raise ValueError(f"{directory}: weight shapes do not match vocabulary and classes")
        if not log_prob.flags.c_contiguous or log_prob.dtype not in (np.float16, np.float32,
                                                                     np.float64):
            raise ValueError(f"{directory}: log_prob.npy is not a C-ordered float array")
        if prior.dtype.kind != "f" or not np.isfinite(prior).all():
            raise ValueError(f"{directory}: class_log_prior.npy holds NaN or infinite values")
        return cls(features, np.asarray(log_prob), np.asarray(prior), classes)
