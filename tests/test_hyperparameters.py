import pytest

from serving.hyperparameters import TUTORIAL, HyperparameterError, parse


def test_defaults_and_sagemaker_string_encodings() -> None:
    hp = parse({"alpha": "0.5", "ngram_max": "\"1\"", "lemmatize": "true",
                "keep_headers": "\"subject\"", "stopwords": "nltk", "sagemaker_region": "x"})
    assert (hp.alpha, hp.ngram_max, hp.lemmatize, hp.keep_headers, hp.stopwords) == (
        0.5, 1, True, "subject", "nltk")
    assert parse({}).preset == "default"


def test_tutorial_preset_sets_the_original_recipe() -> None:
    hp = parse({"preset": "tutorial"})
    assert {k: getattr(hp, k) for k in TUTORIAL} == TUTORIAL
    assert parse({"preset": "tutorial", "alpha": 0.1}).alpha == 0.1


@pytest.mark.parametrize("raw, message", [
    ({"alpah": 1}, "unknown hyper-parameter"),
    ({"alpha": "abc"}, "expected float"),
    ({"alpha": -1}, "between"),
    ({"ngram_max": 1.5}, "expected int"),
    ({"lemmatize": "maybe"}, "expected bool"),
    ({"preset": "fast"}, "preset"),
    ({"stopwords": "klingon"}, "stopwords"),
])
def test_bad_values_are_clear_errors(raw, message) -> None:
    with pytest.raises(HyperparameterError, match=message):
        parse(raw)
