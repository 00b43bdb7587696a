"""The NTM stand-in's topic model (not AWS code): fit with scikit-learn, infer in numpy.

Two algorithms, both giving document-topic proportions that sum to 1 per document, like NTM's
``topic_weights``:

- ``nmf`` (default): NMF (Frobenius) on sublinear-TF x IDF, L2-normalised rows. The stored topics
  ``topic_word`` (K, V) are NMF's components scaled to sum to 1, so a document's weights W
  (non-negative least squares on those topics) say how much of its mass each topic explains;
  ``topic_weights = W / sum(W)``. Inference is the same coordinate descent scikit-learn's NMF uses.
- ``lda``: Latent Dirichlet Allocation; inference is LDA's variational E-step with the stored
  ``exp(E[log beta])`` and the document-topic prior, as ``LatentDirichletAllocation.transform``.

Inference is vectorised over documents, starts from a fixed point and stops per document (a row
that has converged is frozen), so a document's topic vector does not depend on the other
documents in the same request.  The model directory holds only JSON, text and ``.npy``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import psi

from serving import jsondoc
from standins import NOTICE

CONFIG = "standin.json"
ALGORITHMS = ("nmf", "lda")
CHUNK_ROWS = 2048  # inference works through large inputs in blocks of this many rows
_EPS = np.finfo(np.float64).eps


@dataclass
class NtmModel:
    """What NTM inference needs: the topics, the preprocessing and the inference settings."""

    algorithm: str
    topic_word: np.ndarray  # nmf: topics (K, V), rows sum to 1; lda: exp(E[log beta]) (K, V)
    idf: np.ndarray | None = None  # nmf only (V,)
    doc_topic_prior: float = 0.0  # lda only
    max_iter: int = 100
    tol: float = 1e-4
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_topics(self) -> int:
        return int(self.topic_word.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.topic_word.shape[1])

    def save(self, out_dir: Path, vocab: list[str] | None = None) -> Path:
        """Write the model directory (what SageMaker would unpack to /opt/ml/model)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = "exp_elog_beta.npy" if self.algorithm == "lda" else "topic_word.npy"
        np.save(out_dir / name, self.topic_word.astype(np.float64), allow_pickle=False)
        files = [name]
        if self.idf is not None:
            np.save(out_dir / "idf.npy", self.idf.astype(np.float64), allow_pickle=False)
            files.append("idf.npy")
        if vocab is not None:
            (out_dir / "vocab.txt").write_text("".join(w + "\n" for w in vocab), "utf-8")
            top = np.argsort(-self.topic_word, axis=1, kind="stable")[:, :10]
            words = {str(k): [vocab[j] for j in row] for k, row in enumerate(top)}
            (out_dir / "top_words.json").write_text(json.dumps(words, indent=1) + "\n")
            files += ["vocab.txt", "top_words.json"]
        config = {
            "standin": "ntm",
            "notice": NOTICE.format(algorithm="NTM"),
            "algorithm": self.algorithm,
            "feature_dim": self.feature_dim,
            "num_topics": self.num_topics,
            "doc_topic_prior": self.doc_topic_prior,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "files": files,
            **self.meta,
        }
        (out_dir / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        return out_dir

    @classmethod
    def load(cls, model_dir: Path | str) -> NtmModel:
        model_dir = Path(model_dir)
        config = jsondoc.loads((model_dir / CONFIG).read_bytes(), str(model_dir / CONFIG))
        if config.get("standin") != "ntm" or config.get("algorithm") not in ALGORITHMS:
            raise ValueError(f"{model_dir / CONFIG} is not an NTM stand-in model")
        lda = config["algorithm"] == "lda"
        topic_word = np.load(
            model_dir / ("exp_elog_beta.npy" if lda else "topic_word.npy"), allow_pickle=False
        )
        idf = None if lda else np.load(model_dir / "idf.npy", allow_pickle=False)
        model = cls(
            config["algorithm"],
            topic_word,
            idf,
            float(config["doc_topic_prior"]),
            int(config["max_iter"]),
            float(config["tol"]),
            meta=config,
        )
        shape = (config["num_topics"], config["feature_dim"])
        if topic_word.shape != shape or (idf is not None and idf.shape != shape[1:]):
            raise ValueError(f"{model_dir}: arrays do not match num_topics x feature_dim {shape}")
        if not np.isfinite(topic_word).all():
            raise ValueError(f"{model_dir}: the topics hold non-finite values")
        return model


# --- preprocessing -------------------------------------------------------------------------


def check_counts(X: Any, feature_dim: int) -> sp.csr_matrix:
    """Word counts as float64 CSR (n, feature_dim); ValueError if negative or not finite."""
    X = sp.csr_matrix(X, dtype=np.float64)
    if X.shape[1] != feature_dim:
        raise ValueError(f"expected {feature_dim} word counts per document, got {X.shape[1]}")
    X.sum_duplicates()
    X.eliminate_zeros()
    if not np.isfinite(X.data).all():
        raise ValueError("word counts must be finite")
    if X.data.size and X.data.min() < 0:
        raise ValueError("word counts must not be negative")
    return X


def sublinear_tfidf(X: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """(1 + log tf) x idf, rows L2-normalised (zero rows stay zero)."""
    A = X.copy()
    A.data = (1.0 + np.log(np.maximum(A.data, 1e-300))) * idf[A.indices]
    A.data[A.data < 0] = 0.0  # fractional counts below 1/e
    norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    A.data /= np.repeat(norms, np.diff(A.indptr))
    return A


def smooth_idf(X: sp.csr_matrix) -> np.ndarray:
    df = np.bincount(X.indices, minlength=X.shape[1])
    return np.log((1.0 + X.shape[0]) / (1.0 + df)) + 1.0


# --- inference -----------------------------------------------------------------------------


def _nnls_cd(AHt: np.ndarray, HHt: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """min_{W>=0} ||A - W H||² row by row, by cyclic coordinate descent from W = 0.

    A row stops once a sweep moves none of its weights by more than ``tol`` x its largest weight.
    """
    n, k = AHt.shape
    W = np.zeros((k, n))  # transposed: W[t] is contiguous
    target = np.ascontiguousarray(AHt.T)
    diag = np.maximum(np.diag(HHt), _EPS)
    active = np.arange(n)
    for _ in range(max_iter):
        Wa, Ta = W[:, active], target[:, active]
        change = np.zeros(active.size)
        for t in range(k):
            new = np.maximum(Wa[t] - (HHt[t] @ Wa - Ta[t]) / diag[t], 0.0)
            change = np.maximum(change, np.abs(new - Wa[t]))
            Wa[t] = new
        W[:, active] = Wa
        done = change <= tol * np.maximum(Wa.max(axis=0), _EPS)
        active = active[~done]
        if active.size == 0:
            break
    return W.T


def _lda_estep(
    X: sp.csr_matrix, exp_beta: np.ndarray, prior: float, max_iter: int, tol: float
) -> np.ndarray:
    """LDA's variational E-step (as scikit-learn's): gamma per document, from gamma = 1."""
    n, k = X.shape[0], exp_beta.shape[0]
    gamma = np.ones((n, k))
    exp_theta = np.exp(psi(gamma) - psi(gamma.sum(axis=1, keepdims=True)))
    active = np.flatnonzero(np.diff(X.indptr) > 0)
    gamma[np.diff(X.indptr) == 0] = prior  # no known word: the prior alone
    for _ in range(max_iter):
        Xa = X[active]
        rows = np.repeat(np.arange(active.size), np.diff(Xa.indptr))
        et = exp_theta[active]
        norm_phi = np.einsum("ik,ki->i", et[rows], exp_beta[:, Xa.indices]) + _EPS
        R = sp.csr_matrix((Xa.data / norm_phi, Xa.indices, Xa.indptr), shape=Xa.shape)
        new = et * (R @ exp_beta.T) + prior
        change = np.abs(new - gamma[active]).mean(axis=1)
        gamma[active] = new
        exp_theta[active] = np.exp(psi(new) - psi(new.sum(axis=1, keepdims=True)))
        active = active[change >= tol]
        if active.size == 0:
            break
    return gamma


def _infer_block(model: NtmModel, X: sp.csr_matrix) -> np.ndarray:
    if model.algorithm == "lda":
        weights = _lda_estep(X, model.topic_word, model.doc_topic_prior, model.max_iter, model.tol)
    else:
        assert model.idf is not None
        H = model.topic_word
        A = sublinear_tfidf(X, model.idf)
        weights = _nnls_cd(np.asarray(A @ H.T), H @ H.T, model.max_iter, model.tol)
    total = weights.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    weights[empty], total[empty] = 1.0, model.num_topics  # nothing known: uniform
    return weights / total


def infer(model: NtmModel, X_counts: Any) -> np.ndarray:
    """Topic weights (n, K) float32, each row summing to 1, for word counts (n, feature_dim)."""
    X = check_counts(X_counts, model.feature_dim)
    out = np.empty((X.shape[0], model.num_topics), dtype=np.float32)
    for start in range(0, X.shape[0], CHUNK_ROWS):
        block = X[start : start + CHUNK_ROWS]
        out[start : start + block.shape[0]] = _infer_block(model, block)
    return out


# --- fitting -------------------------------------------------------------------------------


def fit(
    X_counts: Any,
    num_topics: int,
    algorithm: str = "nmf",
    seed: int = 0,
    max_iter: int | None = None,
) -> NtmModel:
    """Fit the stand-in topic model on word counts (n, V). ``max_iter``: fitting iterations
    (NMF solver iterations, default 300; LDA online passes, default 10)."""
    from sklearn.decomposition import NMF, LatentDirichletAllocation

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    X = check_counts(X_counts, sp.csr_matrix(X_counts).shape[1])
    if not 2 <= num_topics <= min(1000, X.shape[0]):
        raise ValueError(f"num_topics must be within 2..{min(1000, X.shape[0])} (documents)")
    started = time.perf_counter()
    if algorithm == "lda":
        prior = 1.0 / num_topics
        lda = LatentDirichletAllocation(
            n_components=num_topics,
            doc_topic_prior=prior,
            learning_method="online",
            max_iter=max_iter or 10,
            batch_size=512,
            total_samples=X.shape[0],
            random_state=seed,
            n_jobs=1,
        ).fit(X)
        model = NtmModel(
            "lda",
            lda.exp_dirichlet_component_.astype(np.float64),
            doc_topic_prior=prior,
            max_iter=100,
            tol=1e-3,
        )
        iterations = int(lda.n_iter_)
    else:
        idf = smooth_idf(X)
        nmf = NMF(
            n_components=num_topics,
            init="nndsvda",
            solver="cd",
            max_iter=max_iter or 200,
            tol=1e-3,
            random_state=seed,
        ).fit(sublinear_tfidf(X, idf))
        H = nmf.components_.astype(np.float64)
        scale = H.sum(axis=1, keepdims=True)
        scale[scale <= 0] = 1.0
        model = NtmModel("nmf", H / scale, idf=idf, max_iter=200, tol=1e-4)
        iterations = int(nmf.n_iter_)
    model.meta = {
        "training": {
            "documents": int(X.shape[0]),
            "seed": seed,
            "fit_iterations": iterations,
            "fit_seconds": round(time.perf_counter() - started, 2),
        }
    }
    return model
