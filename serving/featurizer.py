"""Bag-of-words counts over the NTM vocabulary: the first stage of the recommendation pipeline.

Training fits a ``CountVectorizer`` (default 2000 words, ``max_df`` 0.95, ``min_df`` 2, English
stop words) on the cleaned, lemmatized training text; serving applies the frozen result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from serving.classifier import load_cleaner, save_cleaner
from serving.text import TextCleaner
from serving.vectorize import TermVectorizer


@dataclass
class NtmFeaturizer:
    cleaner: TextCleaner
    vectorizer: TermVectorizer

    @property
    def feature_dim(self) -> int:
        return self.vectorizer.n_features

    @property
    def vocabulary(self) -> list[str]:
        return self.vectorizer.terms

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Word counts, float32, one row per text (rows may be all zero)."""
        counts = self.vectorizer.transform([self.cleaner.clean(t) for t in texts])
        return counts.astype(np.float32)

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        return [save_cleaner(self.cleaner, directory / "cleaner.json"),
                *self.vectorizer.save(directory)]

    @classmethod
    def load(cls, directory: Path) -> NtmFeaturizer:
        vectorizer = TermVectorizer.load(directory)
        if vectorizer.idf is not None or vectorizer.norm is not None:
            raise ValueError(f"{directory}: the NTM featurizer must produce raw counts")
        return cls(load_cleaner(directory / "cleaner.json"), vectorizer)
