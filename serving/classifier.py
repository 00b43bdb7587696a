"""The served text classifier: cleaning → TF-IDF → multinomial naive Bayes, in serving layout.

scikit-learn's ``MultinomialNB.predict`` on one sparse row spends most of its time copying the
transposed (features x classes) weight matrix. Here the weights are stored once in that layout
(C-contiguous ``log_prob[feature, class]``) so one document costs a gather of its few rows.

The weights are float32 (half the memory; differences from scikit-learn's float64 numbers are
~1e-6 relative, far below what changes a prediction) and are memory-mapped read-only from the
artifact: loading copies nothing, and every process serving the same model directory (the
forked workers, other containers on the host) shares one copy through the page cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving import jsondoc
from serving.text import Cleaner
from serving.textfeatures import TextFeatures
from serving.vectorize import TermVectorizer

if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.naive_bayes import MultinomialNB


_BLOCK_ROWS = 256  # documents per block of the gathered product (non-scipy weight dtypes)


def probabilities(jll: np.ndarray) -> np.ndarray:
    """Class probabilities from joint log-likelihoods (softmax per row, in place)."""
    jll -= jll.max(axis=1, keepdims=True)
    np.exp(jll, out=jll)
    jll /= jll.sum(axis=1, keepdims=True)
    return jll


def best_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (best first; ties keep class order) and probabilities of the ``k`` best classes."""
    k = max(1, min(k, proba.shape[1]))
    idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(proba, idx, axis=1)


@dataclass
class TextClassifier:
    features: TextFeatures
    log_prob: np.ndarray  # (n_features, n_classes), C-contiguous, float32
    class_log_prior: np.ndarray  # (n_classes,)
    classes: list[str]

    @classmethod
    def from_fitted(
        cls, cleaner: Cleaner, vectorizer: TermVectorizer, nb: MultinomialNB,
        class_names: Sequence[str],
    ) -> TextClassifier:
        return cls(
            features=TextFeatures(cleaner, vectorizer),
            log_prob=np.ascontiguousarray(nb.feature_log_prob_.T, dtype=np.float32),
            class_log_prior=np.asarray(nb.class_log_prior_, dtype=np.float64),
            classes=[class_names[int(c)] for c in nb.classes_],
        )

    def joint_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:  # no sparse matrix for one document; same numbers
            features, values = self.features.one(texts[0])
            return (values @ self.log_prob[features] + self.class_log_prior)[None, :]
        return self.sparse_joint_log_likelihood(self.features.transform(texts))

    def sparse_joint_log_likelihood(self, X: sparse.csr_matrix) -> np.ndarray:
        """The joint log-likelihoods of TF-IDF rows (the one product every path shares)."""
        log_prob = self.log_prob
        if log_prob.dtype in (np.float32, np.float64):
            # scipy's sparse product converts the dense operand to the sparse matrix's dtype: a
            # float64 X would copy all of log_prob per request, a float32 one reads it in place.
            X = X.astype(log_prob.dtype, copy=False)
            return np.asarray(X @ log_prob, dtype=np.float64) + self.class_log_prior
        # Other float weights (float16: scipy's sparse products take no half floats, and
        # converting would copy all of log_prob): each stored value times its term's row of
        # weights, summed per document, a block of documents at a time (bounded memory).
        out = np.zeros((X.shape[0], log_prob.shape[1]), dtype=np.float64)
        indptr, data = X.indptr, X.data.astype(np.float32)
        for lo in range(0, X.shape[0], _BLOCK_ROWS):
            hi = min(lo + _BLOCK_ROWS, X.shape[0])
            first, last = int(indptr[lo]), int(indptr[hi])
            starts = indptr[lo:hi] - first
            rows = np.flatnonzero(starts < indptr[lo + 1 : hi + 1] - first)  # not empty
            if rows.size:
                product = data[first:last, None] * log_prob[X.indices[first:last]]
                out[lo + rows] = np.add.reduceat(product, starts[rows], axis=0)
        return out + self.class_log_prior

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return probabilities(self.joint_log_likelihood(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        best = self.joint_log_likelihood(texts).argmax(axis=1)
        return [self.classes[i] for i in best]

    def top_k(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (best first) and probabilities of the ``k`` most likely classes per text."""
        return best_k(self.predict_proba(texts), k)

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
        if not log_prob.flags.c_contiguous or log_prob.dtype not in (np.float32, np.float64):
            raise ValueError(f"{directory}: log_prob.npy is not a C-ordered float array")
        return cls(features, np.asarray(log_prob), np.asarray(prior), classes)
