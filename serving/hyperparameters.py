"""Training hyper-parameters: typed, validated, with SageMaker's string encoding understood.

SageMaker passes every value as a string, and framework estimators JSON-encode them
(``"\\"abc\\""``, ``"0.01"``, ``"true"``); both plain and JSON-encoded strings are accepted.
Unknown names are an error (a typo must not train a different model silently).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Any

from serving import jsondoc

PRESETS = ("default", "tutorial")


class HyperparameterError(ValueError):
    """A hyper-parameter that is unknown or has an unusable value."""


@dataclass(frozen=True)
class Hyperparameters:
    preset: str = "default"
    # Classifier text cleaning.
    headers: str = "strip"
    keep_headers: str = "subject,from,organization,keywords,summary"
    skip_lines: int = 0
    remove_emails: bool = True
    remove_urls: bool = True
    stopwords: str = "sklearn"
    min_token_len: int = 2
    lemmatize: bool = False
    # TF-IDF + MultinomialNB (chosen by 5-fold CV on the train split; see README).
    ngram_max: int = 2
    min_df: int = 1
    max_df: float = 1.0
    max_features: int = 700_000
    sublinear_tf: bool = True
    alpha: float = 0.01
    # NTM featurizer.
    ntm_vocab_size: int = 2000
    ntm_max_df: float = 0.95
    ntm_min_df: int = 2
    ntm_lemmatize: bool = True
    ntm_parts: int = 4
    num_topics: int = 50
    # Evaluation when no test split is given.
    test_fraction: float = 0.2
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TUTORIAL = {
    "headers": "keep", "skip_lines": 5, "remove_emails": False, "remove_urls": False,
    "stopwords": "nltk", "min_token_len": 1, "lemmatize": False, "ngram_max": 1, "min_df": 1,
    "max_df": 1.0, "max_features": 0, "sublinear_tf": False, "alpha": 0.01,
}

_CHECKS: dict[str, tuple[Any, Any]] = {
    "skip_lines": (0, 1000), "min_token_len": (1, 50), "ngram_max": (1, 3),
    "min_df": (1, 1000), "max_df": (0.01, 1.0), "max_features": (0, 10_000_000),
    "alpha": (1e-10, 100.0), "ntm_vocab_size": (2, 1_000_000), "ntm_max_df": (0.01, 1.0),
    "ntm_min_df": (1, 1000), "ntm_parts": (1, 1000), "num_topics": (2, 1000),
    "test_fraction": (0.01, 0.9), "seed": (0, 2**31 - 1),
}
_CHOICES = {"preset": PRESETS, "headers": ("strip", "keep"), "stopwords": ("sklearn", "nltk",
                                                                           "none")}


def _coerce(name: str, raw: Any, kind: type) -> Any:
    value = raw
    if isinstance(raw, str) and kind is not str:
        try:
            value = jsondoc.loads(raw)
        except ValueError:
            value = raw
    elif isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith('"'):
            try:
                value = jsondoc.loads(stripped)
            except ValueError:
                value = raw
    if isinstance(value, str) and kind is not str and value != raw:
        with contextlib.suppress(ValueError):  # JSON-encoded twice, e.g. "\"1\""
            value = jsondoc.loads(value)
    if isinstance(value, str) and kind is not str:
        if kind is bool and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise HyperparameterError(f"hyper-parameter {name}={raw!r}: expected {kind.__name__}")
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise HyperparameterError(
            f"hyper-parameter {name}={raw!r}: expected {kind.__name__}") from None


def parse(raw: dict[str, Any]) -> Hyperparameters:
    """Validate a name → value mapping (values may be strings) into :class:`Hyperparameters`."""
    types = {f.name: f.type for f in fields(Hyperparameters)}
    kinds = {"str": str, "int": int, "float": float, "bool": bool}
    values: dict[str, Any] = {}
    unknown = []
    for name, value in raw.items():
        if name.startswith(("sagemaker_", "_")):
            continue  # injected by SageMaker's framework estimators
        if name not in types:
            unknown.append(name)
            continue
        values[name] = _coerce(name, value, kinds[str(types[name])])
    if unknown:
        raise HyperparameterError(
            f"unknown hyper-parameter(s): {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(types))}"
        )
    preset = values.get("preset", "default")
    if preset not in PRESETS:
        raise HyperparameterError(f"hyper-parameter preset={preset!r}: expected one of {PRESETS}")
    if preset == "tutorial":
        values = {**TUTORIAL, **values}
    for name, choices in _CHOICES.items():
        if name in values and values[name] not in choices:
            raise HyperparameterError(f"hyper-parameter {name}={values[name]!r}: expected one "
                                      f"of {', '.join(choices)}")
    for name, (low, high) in _CHECKS.items():
        if name in values and not low <= values[name] <= high:
            raise HyperparameterError(
                f"hyper-parameter {name}={values[name]!r}: must be between {low} and {high}")
    return Hyperparameters(**values)
