"""Raw text → weighted term matrix: a fitted :class:`~serving.text.Cleaner` feeding a
:class:`TermVectorizer`, shared by the classifier and the NTM featurizer.

When the cleaner yields letter-only words and the vectorizer uses scikit-learn's default token
pattern, the words go straight to the n-gram step (no re-joining, no second regex pass); the
result is identical (tests compare with scikit-learn on the real corpus).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
        words = self.cleaner.tokens(text)
        if self.direct:
            return self.vectorizer.word_indices(words)
        return self.vectorizer.indices(" ".join(words))

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
