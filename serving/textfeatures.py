"""Raw text → weighted term matrix: a fitted :class:`~serving.text.Cleaner` feeding a
:class:`TermVectorizer`, shared by the classifier and the NTM featurizer.

When the cleaner yields letter-only words and the vectorizer uses scikit-learn's default token
pattern, the words go straight to the n-gram step (no re-joining, no second regex pass); the
result is identical (tests compare with scikit-learn on the real corpus).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from serving import jsondoc
from serving.text import Cleaner
from serving.vectorize import TermVectorizer


def save_cleaner(cleaner: Cleaner, path: Path) -> Path:
    params = cleaner.get_params()
    params["keep_headers"] = list(params["keep_headers"])
    state = {"params": params, "stop_words": list(cleaner.stop_words_)}
    path.write_text(json.dumps(state, indent=1) + "\n")
    return path


def load_cleaner(path: Path) -> Cleaner:
    state = jsondoc.loads(path.read_bytes(), str(path))
    params = dict(state["params"])
    params["keep_headers"] = tuple(params["keep_headers"])
    cleaner = Cleaner(**params)
    cleaner.stop_words_ = list(state["stop_words"])  # carried, so no stopwords corpus needed
    if cleaner.lemmatize:
        cleaner.clean("warm up wordnet")
    return cleaner


@dataclass
class TextFeatures:
    cleaner: Cleaner
    vectorizer: TermVectorizer
    direct: bool = field(init=False)

    def __post_init__(self) -> None:
        self.direct = self.cleaner.letters_only and self.vectorizer.reads_word_tokens

    @property
    def n_features(self) -> int:
        return self.vectorizer.n_features

    def indices(self, text: str) -> np.ndarray:
        """Vocabulary indices of one raw document's terms (with repeats)."""
        if not self.direct:
            return self.vectorizer.indices(" ".join(self.cleaner.tokens(text)))
        chunks = self.cleaner.token_chunks(text)
        first = next(chunks, [])
        second = next(chunks, None)
        if second is None:  # the usual case: one chunk, looked up at once
            return self.vectorizer.word_indices(first)
        return self._long_indices([first, second], chunks)

    def _long_indices(self, head: list[list[str]], rest: Iterator[list[str]]) -> np.ndarray:
        """:meth:`indices` of a long document, chunk by chunk (memory bounded by a chunk).

        Each chunk is looked up with the last ``n - 1`` terms of the one before it, so n-grams
        across the cut are found; the n-grams lying wholly in those carried terms were found
        with the previous chunk and are subtracted.  The result is the same multiset of indices
        as one lookup of the whole document (in another order, which no caller depends on).
        """
        vectorizer = self.vectorizer
        assert vectorizer.index is not None
        overlap = vectorizer.ngram_range[1] - 1
        found, repeated, carry = [], [], []
        for words in itertools.chain(head, rest):
            terms = vectorizer.word_terms(words)
            if not terms:
                continue
            found.append(vectorizer.index.lookup(carry + terms))
            if carry:
                repeated.append(vectorizer.index.lookup(carry))
            carry = (carry + terms)[-overlap:] if overlap else []
        if not found:
            return np.zeros(0, dtype=np.int64)
        size = vectorizer.n_features
        counts = np.bincount(np.concatenate(found), minlength=size)
        if repeated:
            counts -= np.bincount(np.concatenate(repeated), minlength=size)
        return np.repeat(np.arange(size, dtype=np.int64), counts)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.vectorizer.transform_indices([self.indices(t) for t in texts])

    def one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One document as sorted unique feature indices and their weights."""
        found = np.sort(self.indices(text))
        if not found.size:
            return found, np.zeros(0, dtype=np.float64)
        starts = np.flatnonzero(np.concatenate(([True], found[1:] != found[:-1])))
        counts = np.diff(np.append(starts, found.size)).astype(np.float64)
        return found[starts], self.vectorizer.weight_row(found[starts], counts)

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        return [save_cleaner(self.cleaner, directory / "cleaner.json"),
                *self.vectorizer.save(directory)]

    @classmethod
    def load(cls, directory: Path) -> TextFeatures:
        return cls(load_cleaner(directory / "cleaner.json"), TermVectorizer.load(directory))
