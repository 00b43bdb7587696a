import pickle

import pytest

from serving.text import split_headers, subject_of
from serving.transformers import TextCleaner

MSG = ("From: alice@example.edu (Alice)\nSubject: Re: Orbit insertion\nPath: a!b!c\n"
       "Newsgroups: sci.space\nOrganization: Space U\n\nThe shuttle's 2nd ORBIT was fine.\n"
       "Mail bob@nasa.gov or see https://nasa.gov/x and www.example.com today\n")


def test_headers_are_parsed_and_routing_dropped() -> None:
    headers, body = split_headers(MSG)
    assert ("subject", "Re: Orbit insertion") in headers
    assert body.startswith("The shuttle")
    cleaned = TextCleaner().fit().clean(MSG)
    assert "orbit" in cleaned.split() and "insertion" in cleaned.split()
    assert "sci" not in cleaned and "path" not in cleaned  # Newsgroups/Path dropped
    assert "space" in cleaned.split()  # Organization kept by default


def test_emails_urls_digits_and_stopwords_removed() -> None:
    words = TextCleaner().fit().clean(MSG).split()
    assert not {"bob", "nasa", "gov", "https", "www", "example"} & set(words[-6:])
    assert "2nd" not in words and "nd" in words  # non-letters split, digits gone
    assert "the" not in words and "was" not in words
    assert all(w == w.lower() for w in words)


def test_keep_headers_configurable() -> None:
    cleaner = TextCleaner(keep_headers=("subject",)).fit()
    assert "space" not in cleaner.clean(MSG).split()[:3]
    keep_all = TextCleaner(headers="keep").fit().clean(MSG).split()
    assert "newsgroups" in keep_all


def test_plain_text_without_headers_is_all_body() -> None:
    assert TextCleaner().fit().clean("Hockey: the best game") == "hockey best game"
    assert split_headers("just text\n\nmore") == ([], "just text\n\nmore")


def test_skip_lines_and_nltk_stopwords(monkeypatch: pytest.MonkeyPatch) -> None:
    cleaner = TextCleaner(skip_lines=2, headers="keep", stopwords="none", min_token_len=1).fit()
    assert cleaner.clean("a b\nc d\ne f") == "e f"


def test_nltk_stopwords_need_the_corpus(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    from nltk.corpus import stopwords

    stopwords._unload() if hasattr(stopwords, "_unload") else None
    with pytest.raises(LookupError, match="NLTK_DATA"):
        TextCleaner(stopwords="nltk").fit()


def test_fitted_cleaner_carries_stopwords_and_pickles() -> None:
    cleaner = TextCleaner(stopwords="sklearn").fit()
    assert "the" in cleaner.stop_words_
    clone = pickle.loads(pickle.dumps(cleaner))
    assert clone.clean(MSG) == cleaner.clean(MSG)
    assert "_cache" not in pickle.loads(pickle.dumps(clone)).__dict__


def test_subject_fallbacks() -> None:
    assert subject_of(MSG) == "Re: Orbit insertion"
    assert subject_of("odd line\nSubject: hidden\n\nbody") == "hidden"
    assert subject_of("\n\nfirst line here\nsecond") == "first line here"


def test_bad_parameters_rejected() -> None:
    with pytest.raises(ValueError):
        TextCleaner(headers="weird").fit()
    with pytest.raises(ValueError):
        TextCleaner(stopwords="klingon").fit()


@pytest.mark.skipif("not __import__('tests.conftest', fromlist=['x']).HAVE_WORDNET",
                    reason="WordNet (../shared/nltk_data) not available")
def test_lemmatize_with_wordnet() -> None:
    cleaner = TextCleaner(lemmatize=True).fit()
    assert cleaner.clean("cars were running over geese") == "car run goose"


@pytest.mark.skipif("not __import__('tests.conftest', fromlist=['x']).HAVE_WORDNET",
                    reason="WordNet (../shared/nltk_data) not available")
def test_lemma_equals_nltk_wordnet_lemmatizer() -> None:
    from nltk.stem import WordNetLemmatizer

    from serving.text import lemma

    reference = WordNetLemmatizer()
    words = ["cars", "geese", "running", "was", "has", "us", "mice", "better", "studies",
             "churches", "aardwolves", "xyzzy", "leaves", "went", "corpora", "analyses"]
    for word in words:
        noun = reference.lemmatize(word)
        assert lemma(word) == (noun if noun != word else reference.lemmatize(word, "v"))


def test_serving_imports_neither_sklearn_nor_nltk() -> None:
    import subprocess
    import sys

    code = ("import sys, serving.app, serving.serve, serving.stages; "
            "print(sorted(m for m in ('sklearn', 'nltk') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
