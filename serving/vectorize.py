"""Term counting and TF-IDF weighting for already-cleaned text, equal to scikit-learn's.

Training fits a scikit-learn ``CountVectorizer``/``TfidfVectorizer``; :func:`from_sklearn`
turns it into a :class:`TermVectorizer` that keeps only what serving needs (vocabulary, idf,
a few parameters) in plain arrays and JSON, and transforms with vectorised numpy/scipy.
Tests assert the output equals scikit-learn's ``transform`` on the real test split.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from serving import hashtable, jsondoc
from serving.termindex import TermIndex

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


class Rows(NamedTuple):
    """Weighted rows as CSR arrays (sorted, unique indices per row) without a scipy matrix:
    the classifier's product reads the arrays alone, so a classify server need not import
    scipy (~80 ms of its start in the image). :meth:`tocsr` makes the scipy matrix."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def tocsr(self) -> sp.csr_matrix:
        import scipy.sparse as sp

        X = sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)
        X.has_sorted_indices = True
        X.has_canonical_format = True
        return X


@dataclass
class TermVectorizer:
    """Cleaned text → sparse term matrix (counts, or TF-IDF when ``idf`` is set)."""

    terms: list[str] | None  # None when loaded with a saved index (not needed to serve)
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    lowercase: bool = True
    ngram_range: tuple[int, int] = (1, 1)
    stop_words: frozenset[str] = frozenset()
    idf: np.ndarray | None = None
    sublinear_tf: bool = False
    norm: str | None = None
    binary: bool = False
    n_features: int = -1
    index: TermIndex | None = field(default=None, repr=False)
    _token_re: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.terms is not None:
            self.n_features = len(self.terms)
        if self.index is None:
            if self.terms is None:
                raise ValueError("a TermVectorizer needs its terms or a saved index")
            self.index = TermIndex.build(self.terms, self.ngram_range)
        self._token_re = re.compile(self.token_pattern)
        if self.norm not in (None, "l1", "l2"):
            raise ValueError(f"norm={self.norm!r}")
        if self.idf is not None and self.idf.shape != (self.n_features,):
            raise ValueError("idf does not match the vocabulary")

    @property
    def reads_word_tokens(self) -> bool:
        """True when the token pattern is scikit-learn's default, so a list of words made of
        letters only can be analysed without re-joining and re-matching (:meth:`word_indices`)."""
        return self.token_pattern == DEFAULT_TOKEN_PATTERN

    def _tokens(self, doc: str) -> list[str]:
        if self.lowercase:
            doc = doc.lower()
        return self._stop(self._token_re.findall(doc))

    def _stop(self, tokens: list[str]) -> list[str]:
        if self.stop_words:
            stop = self.stop_words
            return [t for t in tokens if t not in stop]
        return tokens

    def indices(self, doc: str) -> np.ndarray:
        """Feature indices of one document's terms (with repeats, unknown terms dropped)."""
        assert self.index is not None
        return self.index.lookup(self._tokens(doc))

    def word_terms(self, words: list[str]) -> list[str]:
        """The tokens :meth:`word_indices` looks up: lower-cased, one-letter words and stop
        words dropped."""
        if self.lowercase:
            words = [w.lower() for w in words]
        return self._stop([w for w in words if len(w) > 1])

    def word_indices(self, words: list[str]) -> np.ndarray:
        """:meth:`indices` of ``" ".join(words)`` for words of letters only, without the
        regex pass (valid when :attr:`reads_word_tokens`)."""
        assert self.index is not None
        return self.index.lookup(self.word_terms(words))

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        return self.transform_indices([self.indices(doc) for doc in docs])

    def transform_indices(self, per_doc: list[np.ndarray]) -> sp.csr_matrix:
        """Weighted matrix from each document's term indices (see :meth:`indices`)."""
        import scipy.sparse as sp

        lengths = np.fromiter((len(ix) for ix in per_doc), dtype=np.int64, count=len(per_doc))
        indptr = np.zeros(len(per_doc) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(per_doc) if per_doc else np.zeros(0, dtype=np.int64)
        data = np.ones(len(indices), dtype=np.float64)
        X = sp.csr_matrix((data, indices, indptr), shape=(len(per_doc), self.n_features))
        X.sum_duplicates()  # counts; also sorts indices
        return self.weight(X)

    def weight(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """Apply binary/sublinear tf, idf and row normalisation to a count matrix."""
        self._weigh(X.data, X.indices, X.indptr)
        return X

    def weight_pairs(self, rows: np.ndarray, features: np.ndarray, n_rows: int,
                     ) -> sp.csr_matrix:
        """:meth:`weight_pair_rows` as a scipy matrix."""
        return self.weight_pair_rows(rows, features, n_rows).tocsr()

    def weight_pair_rows(self, rows: np.ndarray, features: np.ndarray, n_rows: int) -> Rows:
        """:meth:`weight` of the count matrix of (row, feature) pairs given with repeats, in any
        order: each pair packed into one int64 and sorted once (instead of coo → csr, summing
        duplicates and sorting each row's indices); the same matrix, bit for bit."""
        n = self.n_features
        packed = np.multiply(rows, n, dtype=np.int64)
        packed += features
        packed.sort()
        scanner = hashtable.COMPILED
        if scanner is not None and n < 2**31:  # the runs counted in one C pass
            indices = np.empty(packed.size, dtype=np.int32)
            data = np.empty(packed.size, dtype=np.float64)
            indptr = np.empty(n_rows + 1, dtype=np.int64)
            nnz = scanner.pair_runs(packed, n, indptr, indices, data)
            return self._rows(data[:nnz], indices[:nnz], indptr.astype(
                np.int32 if nnz < 2**31 else np.int64), n_rows)
        edge = np.empty(packed.size + 1, dtype=bool)
        edge[0] = edge[-1] = True
        np.not_equal(packed[1:], packed[:-1], out=edge[1:-1])
        edges = np.flatnonzero(edge)
        unique = packed[edges[:-1]]
        data = np.diff(edges).astype(np.float64)
        row = unique // n
        indices = (unique - row * n).astype(np.int32 if n < 2**31 else np.int64)
        indptr = np.zeros(n_rows + 1, dtype=indices.dtype if data.size < 2**31 else np.int64)
        np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
        return self._rows(data, indices, indptr, n_rows)

    def _rows(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int,
              ) -> Rows:
        """The weighted rows of counts in CSR arrays with sorted, unique indices."""
        self._weigh(data, indices, indptr)
        return Rows(data, indices, indptr, (n_rows, self.n_features))

    def _weigh(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> None:
        """:meth:`weight` on CSR arrays with sorted, unique indices, in place."""
        if self.binary:
            data[:] = 1.0
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1.0
        if self.idf is not None:
            data *= self.idf[indices]
        if self.norm is not None:
            # Row sums as scipy's ``X.multiply(X).sum(axis=1)`` takes them (np.add.reduceat over
            # the non-empty rows), so the numbers are the same to the last bit.
            size = data * data if self.norm == "l2" else np.abs(data)
            scale = np.zeros(indptr.size - 1, dtype=np.float64)
            rows = np.flatnonzero(np.diff(indptr))
            if rows.size:
                scale[rows] = np.add.reduceat(size, indptr[rows])
            if self.norm == "l2":
                np.sqrt(scale, out=scale)
            scale[scale == 0.0] = 1.0
            data /= np.repeat(scale, np.diff(indptr))

    def weight_row(self, indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """:meth:`weight` for one document given as sorted unique indices and their counts."""
        if self.binary:
            counts[:] = 1.0
        if self.sublinear_tf:
            np.log(counts, out=counts)
            counts += 1.0
        if self.idf is not None:
            counts *= np.take(self.idf, indices)
        if self.norm is not None and counts.size:
            scale = np.sqrt(counts @ counts) if self.norm == "l2" else np.abs(counts).sum()
            if scale:
                counts /= scale
        return counts

    # Persistence: JSON parameters + vocabulary text + idf .npy (no code runs on load).
    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        params = {
            "token_pattern": self.token_pattern,
            "lowercase": self.lowercase,
            "ngram_range": list(self.ngram_range),
            "stop_words": sorted(self.stop_words),
            "sublinear_tf": self.sublinear_tf,
            "norm": self.norm,
            "binary": self.binary,
            "n_features": self.n_features,
        }
        if self.terms is None:
            raise ValueError("only a vectorizer that holds its terms can be saved")
        written = [directory / "vectorizer.json", directory / "vocab.txt"]
        written[0].write_text(json.dumps(params, indent=1) + "\n")
        written[1].write_text("".join(f"{t}\n" for t in self.terms), encoding="utf-8")
        assert self.index is not None
        written += self.index.save(directory)
        if self.idf is not None:
            np.save(directory / "idf.npy", self.idf, allow_pickle=False)
            written.append(directory / "idf.npy")
        return written

    @classmethod
    def load(cls, directory: Path) -> TermVectorizer:
        params: dict[str, Any] = jsondoc.loads(
            (directory / "vectorizer.json").read_bytes(), "vectorizer.json")
        ngram_range = (params["ngram_range"][0], params["ngram_range"][1])
        index = TermIndex.load(directory, ngram_range)
        terms = None
        lines = count_lines(directory / "vocab.txt")
        if lines != params["n_features"] or (index is not None
                                             and index.n_features != params["n_features"]):
            raise ValueError(f"{directory}: vocab.txt ({lines} terms) or the term index does "
                             f"not match n_features={params['n_features']}")
        if index is None:  # no compact index saved: build the lookup from the vocabulary
            terms = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
            if len(terms) != params["n_features"]:
                raise ValueError(f"{directory}/vocab.txt has {len(terms)} terms, expected "
                                 f"{params['n_features']}")
        idf_path = directory / "idf.npy"
        idf = (np.asarray(np.load(idf_path, mmap_mode="r", allow_pickle=False))
               if idf_path.exists() else None)
        return cls(
            terms=terms,
            token_pattern=params["token_pattern"],
            lowercase=params["lowercase"],
            ngram_range=ngram_range,
            stop_words=frozenset(params["stop_words"]),
            idf=idf,
            sublinear_tf=params["sublinear_tf"],
            norm=params["norm"],
            binary=params["binary"],
            n_features=params["n_features"],
            index=index,
        )


def count_lines(path: Path, block: int = 1 << 20) -> int:
    """The newlines of a file, counted in numpy a block of the mapped file at a time (the
    vocabulary's 9.6 MB: ~4 ms, against ~16 ms to read it and ``bytes.count``, at start-up)."""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            data = np.frombuffer(mapped, dtype=np.uint8)
            try:
                return sum(int(np.count_nonzero(data[i:i + block] == 10))
                           for i in range(0, data.size, block))
            finally:
                del data  # the view must go before the map closes


def from_sklearn(vectorizer: CountVectorizer) -> TermVectorizer:
    """Freeze a fitted word-analyzer ``CountVectorizer`` or ``TfidfVectorizer``."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    if vectorizer.analyzer != "word" or vectorizer.tokenizer is not None:
        raise ValueError("only the default word analyzer is supported")
    if vectorizer.preprocessor is not None or vectorizer.strip_accents is not None:
        raise ValueError("preprocessor/strip_accents are not supported; clean text first")
    stop = vectorizer.stop_words
    if stop == "english":
        stop_set = frozenset(ENGLISH_STOP_WORDS)
    elif stop is None:
        stop_set = frozenset()
    else:
        stop_set = frozenset(stop)
    vocab = vectorizer.vocabulary_
    terms = [""] * len(vocab)
    for term, index in vocab.items():
        terms[index] = term
    is_tfidf = isinstance(vectorizer, TfidfVectorizer)
    return TermVectorizer(
        terms=terms,
        token_pattern=vectorizer.token_pattern,
        lowercase=vectorizer.lowercase,
        ngram_range=tuple(vectorizer.ngram_range),  # type: ignore[arg-type]
        stop_words=stop_set,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64) if is_tfidf and vectorizer.use_idf
        else None,
        sublinear_tf=bool(is_tfidf and vectorizer.sublinear_tf),
        norm=vectorizer.norm if is_tfidf else None,
        binary=bool(vectorizer.binary),
    )
