"""scikit-learn wrappers of the project's pure-Python pieces, for training pipelines."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin

from serving.text import Cleaner


class TextCleaner(TransformerMixin, BaseEstimator, Cleaner):
    """:class:`serving.text.Cleaner` as an importable, picklable scikit-learn transformer
    (``get_params``/``set_params``/``clone``, usable in ``Pipeline`` and ``GridSearchCV``)."""

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "stop_words_")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_cache", None)
        return state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return BaseEstimator.get_params(self, deep)
