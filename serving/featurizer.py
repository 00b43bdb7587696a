"""Bag-of-words counts over the NTM vocabulary: the first stage of the recommendation pipeline.

Training fits a ``CountVectorizer`` (default 2000 words, ``max_df`` 0.95, ``min_df`` 2, English
stop words) on the cleaned, lemmatized training text; serving applies the frozen result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving.text import Cleaner
from serving.textfeatures import TextFeatures
from serving.vectorize import TermVectorizer

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class NtmFeaturizer:
    features: TextFeatures

    @classmethod
    def from_fitted(cls, cleaner: Cleaner, vectorizer: TermVectorizer) -> NtmFeaturizer:
        return cls(TextFeatures(cleaner, vectorizer))

    @property
    def feature_dim(self) -> int:
        return self.features.n_features

    @property
    def vocabulary(self) -> list[str]:
        terms = self.features.vectorizer.terms
        if terms is None:
            raise ValueError("the vocabulary is in the artifact's ntm/vocab.txt")
        return terms

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Word counts, float32, one row per text (rows may be all zero)."""
        return self.features.transform(texts).astype(np.float32)

    def save(self, directory: Path) -> list[Path]:
        return self.features.save(directory)

    @classmethod
    def load(cls, directory: Path) -> NtmFeaturizer:
        features = TextFeatures.load(directory)
        vectorizer = features.vectorizer
        if vectorizer.idf is not None or vectorizer.norm is not None or vectorizer.sublinear_tf:
            raise ValueError(f"{directory}: the NTM featurizer must produce raw counts")
        return cls(features)
