"""serving.lemmas: NLTK's WordNet lemmatizer, from data saved with the model."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from serving.lemmas import Lemmatizer
from tests.conftest import DATA_TGZ, REPO, need_real_data

pytestmark = pytest.mark.skipif(
    "not __import__('tests.conftest', fromlist=['x']).HAVE_WORDNET",
    reason="WordNet (../shared/nltk_data) not available")


def _nltk_lemma(reference: object, word: str) -> str:
    noun = reference.lemmatize(word)  # type: ignore[attr-defined]
    return noun if noun != word else reference.lemmatize(word, "v")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def lemmatizer() -> Lemmatizer:
    from serving.text import wordnet_lemmatizer

    return wordnet_lemmatizer()


def test_rules_exceptions_and_unknown_words(lemmatizer: Lemmatizer) -> None:
    from nltk.stem import WordNetLemmatizer

    reference = WordNetLemmatizer()
    words = ["cars", "geese", "running", "was", "has", "us", "mice", "better", "studies",
             "churches", "aardwolves", "xyzzy", "leaves", "went", "corpora", "analyses",
             "women", "boxes", "buzzes", "wives", "dishes", "flies", "axes", "ran", "s", "",
             "ss", "ies", "ing", "men", "ed", "hopped", "hoping", "ate", "dies"]
    for pos in ("n", "v"):
        for word in words:
            assert lemmatizer.lemmatize(word, pos) == reference.lemmatize(word, pos), (word, pos)
    for word in words:
        assert lemmatizer.lemma(word) == _nltk_lemma(reference, word), word


def test_morphy_equals_nltk_in_order(lemmatizer: Lemmatizer) -> None:
    from nltk.corpus import wordnet

    for word in ["axes", "leaves", "saw", "found", "bases", "lying", "dies", "does", "cars"]:
        for pos in ("n", "v"):
            assert lemmatizer.morphy(word, pos) == wordnet._morphy(word, pos), (word, pos)


@pytest.mark.data
@pytest.mark.slow
def test_equals_nltk_on_every_token_of_the_training_split(lemmatizer: Lemmatizer) -> None:
    need_real_data()
    from nltk.stem import WordNetLemmatizer

    from serving.data import load_splits
    from serving.text import Cleaner

    cleaner = Cleaner(stopwords="none", min_token_len=1).fit()
    words: set[str] = set()
    for text in load_splits(str(DATA_TGZ)).train.texts:
        words.update(cleaner.tokens(text))
    assert len(words) > 50_000
    reference = WordNetLemmatizer()
    wrong = [w for w in words if lemmatizer.lemma(w) != _nltk_lemma(reference, w)]
    assert wrong == []


def test_saved_and_loaded_unchanged(lemmatizer: Lemmatizer, tmp_path: Path) -> None:
    path = lemmatizer.save(tmp_path / "lemmas.json")
    loaded = Lemmatizer.load(path)
    assert loaded.lemmas == lemmatizer.lemmas
    assert loaded.exceptions == lemmatizer.exceptions
    assert len(loaded.lemmas["n"]) > 100_000 and len(loaded.exceptions["v"]) > 2_000
    assert loaded.lemma("geese") == "goose" and loaded.lemma("running") == "run"


@pytest.mark.parametrize("content", [b"[]", b'{"format": 2}', b'{"format": 1}',
                                     b'{"format": 1, "lemmas": {"n": 1, "v": ""}, '
                                     b'"exceptions": {"n": "", "v": ""}}'])
def test_malformed_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "lemmas.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="lemma file"):
        Lemmatizer.load(path)


def test_pickles_without_its_cache(lemmatizer: Lemmatizer) -> None:
    lemmatizer.lemma("geese")
    copy = pickle.loads(pickle.dumps(lemmatizer))
    assert copy._cache == {} and copy.lemma("geese") == "goose"


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.lemmas

    small = Lemmatizer({"n": frozenset({"car"}), "v": frozenset({"run"})}, {"n": {}, "v": {}})
    monkeypatch.setattr(serving.lemmas, "CACHE_SIZE", 2)
    assert [small.lemma(w) for w in ("cars", "runs", "car")] == ["car", "run", "car"]
    assert len(small._cache) <= 2


def test_trained_ntm_cleaner_serves_without_nltk(tiny_model_dir: Path) -> None:
    """The artifact carries the lemmas: loading and running the lemmatizing NTM stage imports
    no NLTK (whose import alone is ~2 s of start-up) and answers as the training cleaner."""
    assert (tiny_model_dir / "ntm" / "lemmas.json").is_file()
    code = ("import sys; from serving.artifact import Model; "
            "f = Model.load(sys.argv[1]).featurizer.features; "
            "print(f.cleaner.clean('Subject: geese\\n\\ncars were running'), "
            "sorted(m for m in ('nltk', 'sklearn') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "goose car run []"


def test_cleaner_saved_before_lemmas_reads_the_installed_wordnet(tiny_model_dir: Path,
                                                                  tmp_path: Path) -> None:
    from serving.text import wordnet_lemmatizer
    from serving.textfeatures import load_cleaner

    (tmp_path / "cleaner.json").write_bytes((tiny_model_dir / "ntm" / "cleaner.json").read_bytes())
    cleaner = load_cleaner(tmp_path / "cleaner.json")
    assert cleaner.lemmatize and cleaner.lemmatizer_ is wordnet_lemmatizer()
    assert cleaner.clean("cars were running over geese") == "car run goose"
    saved = load_cleaner(tiny_model_dir / "ntm" / "cleaner.json")
    assert saved.lemmatizer_ is not wordnet_lemmatizer()
    assert saved.clean("cars were running over geese") == "car run goose"


def test_zipped_corpus_reads_as_the_installed_one(lemmatizer: Lemmatizer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``nltk.download('wordnet')`` leaves a zip (../shared has one); Debian's wordnet-base, as
    set up here and in the image, a directory."""
    import nltk

    from tests.conftest import NLTK_DATA

    monkeypatch.setattr(nltk.data, "path", [str(NLTK_DATA)])
    zipped = Lemmatizer.from_wordnet(nltk.data.find("corpora/wordnet.zip/wordnet/"))
    assert zipped.lemmas == lemmatizer.lemmas and zipped.exceptions == lemmatizer.exceptions


def test_long_forms_are_their_own_lemma_and_never_cached(lemmatizer: Lemmatizer) -> None:
    from nltk.stem import WordNetLemmatizer

    reference = WordNetLemmatizer()
    longest = max(lemmatizer.lemmas["n"], key=len)
    near = [longest + "s", longest + "es", longest + "ing", longest + "xing", longest + "sses"]
    for word in near:  # at or just past the bound: still the rules' answer, NLTK's
        assert lemmatizer.lemma(word) == _nltk_lemma(reference, word), word
    assert lemmatizer.lemma(longest + "s") == longest
    before = len(lemmatizer._cache)
    hostile = [f"{'q' * (lemmatizer.max_form + 1)}{i:x}" for i in range(2000)]
    assert [lemmatizer.lemma(w) for w in hostile] == hostile
    assert len(lemmatizer._cache) == before
    assert [_nltk_lemma(reference, w) for w in hostile[:20]] == hostile[:20]
