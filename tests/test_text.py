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


def _split_headers_line_by_line(text: str) -> tuple[list[tuple[str, str]], str]:
    """split_headers as it was written before the one-regex path (the reference)."""
    from serving.headers import _HEADER_LINE, KNOWN_HEADERS, MAX_HEADER_CHARS

    if not _HEADER_LINE.match(text):
        return [], text
    head, sep, body = text.partition("\n\n")
    if not sep:
        head, body = text, ""
    if len(head) > MAX_HEADER_CHARS:
        return [], text
    parts: list[tuple[str, list[str]]] = []
    for line in head.splitlines():
        if line[:1] in (" ", "\t") and parts:
            parts[-1][1].append(line.strip())
        elif _HEADER_LINE.match(line):
            name, _, value = line.partition(":")
            parts.append((name.strip().lower(), [value.strip()]))
        else:
            return [], text
    headers = [(name, " ".join(values)) for name, values in parts]
    if not any(name in KNOWN_HEADERS for name, _ in headers):
        return [], text
    return headers, body


def test_split_headers_equals_the_line_loop_on_generated_blocks() -> None:
    import random

    rng = random.Random(7)
    pieces = ["From: a@b.edu", "Subject: Re: orbit", "X-Odd-9: v", "Question: why", "Lines: 3",
              " folded", "\tfolded", "  ", "", "not a header", "Keywords:", "Subject:x\u00a0 ",
              "9bad: x", "Sub ject: x", "a:", "From: x\r", "Organization: U\x0cV", "To: \u2028y",
              "Summary:\x1c s \x1d", "cc: \x85z", "Path: a!b"]
    for _ in range(3000):
        lines = [rng.choice(pieces) for _ in range(rng.randint(0, 8))]
        text = rng.choice(["\n", "\r\n", "\n\n"]).join(lines) + rng.choice(
            ["", "\n", "\n\nbody text", "\n\n\nbody", "\nbody"])
        assert split_headers(text) == _split_headers_line_by_line(text), repr(text)


@pytest.mark.data
@pytest.mark.slow
def test_split_headers_equals_the_line_loop_on_20news() -> None:
    from serving.data import load_splits
    from tests.conftest import DATA_TGZ, need_real_data

    need_real_data()
    splits = load_splits(str(DATA_TGZ))
    for text in [*splits.train.texts, *splits.test.texts]:
        assert split_headers(text) == _split_headers_line_by_line(text)
