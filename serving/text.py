"""Text cleaning for Usenet news.

:class:`Cleaner` holds the cleaning logic and imports neither scikit-learn nor NLTK (serving
loads it from JSON; importing scikit-learn would cost ~60 MB and ~1 s of start-up in every
server). :class:`serving.transformers.TextCleaner` is the same class as a scikit-learn
transformer, for training pipelines. The fitted cleaner carries its own stop-word list
(``stop_words_``), so serving never needs NLTK's stopwords corpus. Lemmatization reads NLTK's
WordNet (from ``NLTK_DATA``) when a cleaner is fitted; the fitted cleaner carries that data too
(``lemmatizer_``, :mod:`serving.lemmas`, saved as ``lemmas.json``), so serving needs neither
NLTK nor the WordNet corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from serving.headers import (  # noqa: F401  (split_headers and subject_of lived here)
    KNOWN_HEADERS,
    MAX_HEADER_CHARS,
    split_headers,
    subject_of,
)
from serving.lemmas import Lemmatizer

STOPWORD_SOURCES = ("sklearn", "nltk", "none")
# Headers whose values carry topic words. Routing headers (Path, Xref, Newsgroups, Message-ID,
# References, NNTP-Posting-Host, Lines, ...) are dropped: Newsgroups would leak the label.
DEFAULT_KEEP_HEADERS = ("subject", "from", "organization", "keywords", "summary")

PARAMS = ("skip_lines", "headers", "keep_headers", "lowercase", "remove_emails", "remove_urls",
          "letters_only", "stopwords", "min_token_len", "lemmatize")
# bytes.translate table: ASCII letters stay, every other byte becomes a space.
LETTERS = bytes(c if chr(c).isascii() and chr(c).isalpha() else 32 for c in range(256))
CHUNK_CHARS = 1 << 17


def _drop_words(text: str, emails: bool, urls: bool) -> str:
    """Remove e-mail addresses and URLs as whole white-space-delimited words."""
    has_email = emails and "@" in text
    has_url = urls and ("://" in text or "www." in text)
    if not (has_email or has_url):
        return text
    words = text.split()
    if has_email:
        words = [w for w in words if "@" not in w]
    if has_url:
        words = [w for w in words if "://" not in w and "www." not in w]
    return " ".join(words)


def nltk_stopwords() -> frozenset[str]:
    """NLTK's English stop words, read from ``NLTK_DATA`` (raises a clear error if absent)."""
    try:
        from nltk.corpus import stopwords

        return frozenset(stopwords.words("english"))
    except LookupError as exc:
        raise LookupError(
            "NLTK's 'stopwords' corpus was not found: run 'bash scripts/setup.sh' (installs it "
            "into /usr/local/share/nltk_data), set NLTK_DATA to a directory holding "
            "corpora/stopwords(.zip), or run "
            "python -m nltk.downloader stopwords where the internet is reachable."
        ) from exc


def resolve_stopwords(source: str) -> frozenset[str]:
    if source == "sklearn":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)
    if source == "nltk":
        return nltk_stopwords()
    if source == "none":
        return frozenset()
    raise ValueError(f"stopwords={source!r}; expected one of {STOPWORD_SOURCES}")


@lru_cache(maxsize=1)
def _wordnet_root() -> Any:
    """The WordNet corpus NLTK would read (a directory or inside a zip), or a clear LookupError."""
    import nltk

    try:
        return nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            return nltk.data.find("corpora/wordnet.zip/wordnet/")
        except LookupError as exc:
            raise LookupError(
                "NLTK's WordNet corpus was not found: run 'bash scripts/setup.sh' (installs it "
                "into /usr/local/share/nltk_data) or set NLTK_DATA to a directory holding "
                "corpora/wordnet(.zip); in the image it comes from Debian's wordnet-base."
            ) from exc


@lru_cache(maxsize=1)
def wordnet_lemmatizer() -> Lemmatizer:
    """The :class:`~serving.lemmas.Lemmatizer` of the installed WordNet (read once)."""
    return Lemmatizer.from_wordnet(_wordnet_root())


def lemma(word: str) -> str:
    """WordNet lemma (noun, then verb) of a lower-case word, as NLTK's WordNetLemmatizer."""
    return wordnet_lemmatizer().lemma(word)


class Cleaner:
    """Clean raw news text into space-separated tokens.

    Steps, in order: drop the first ``skip_lines`` lines; parse the header block and keep only
    the values of ``keep_headers`` (``headers="strip"``) or keep it as text (``"keep"``);
    lower-case; remove e-mail addresses and URLs; replace non-letters by spaces; tokenize
    with NLTK's ``RegexpTokenizer``; drop stop words and tokens shorter than ``min_token_len``;
    optionally lemmatize with WordNet.
    """

    def __init__(
        self,
        *,
        skip_lines: int = 0,
        headers: str = "strip",
        keep_headers: Sequence[str] = DEFAULT_KEEP_HEADERS,
        lowercase: bool = True,
        remove_emails: bool = True,
        remove_urls: bool = True,
        letters_only: bool = True,
        stopwords: str = "sklearn",
        min_token_len: int = 2,
        lemmatize: bool = False,
    ) -> None:
        self.skip_lines = skip_lines
        self.headers = headers
        self.keep_headers = keep_headers
        self.lowercase = lowercase
        self.remove_emails = remove_emails
        self.remove_urls = remove_urls
        self.letters_only = letters_only
        self.stopwords = stopwords
        self.min_token_len = min_token_len
        self.lemmatize = lemmatize

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAMS}

    def fit(self, X: Iterable[str] | None = None, y: Any = None) -> Cleaner:
        if self.headers not in ("strip", "keep"):
            raise ValueError(f"headers={self.headers!r}; expected 'strip' or 'keep'")
        if self.skip_lines < 0 or self.min_token_len < 1:
            raise ValueError("skip_lines must be >= 0 and min_token_len >= 1")
        self.stop_words_ = sorted(resolve_stopwords(self.stopwords))
        if self.lemmatize:
            self.lemmatizer_ = wordnet_lemmatizer()
        return self

    def transform(self, X: Iterable[str]) -> list[str]:
        return [self.clean(doc) for doc in X]

    # The hot path: everything below is per document.
    def _compiled(self) -> tuple[frozenset[str], set[str], Any, Lemmatizer | None]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            # Tokens are maximal runs of letters (so non-letters act as separators) or, with
            # letters_only=False, of letters and digits.
            tokenizer = None
            if not self.letters_only:  # NLTK is imported only when its tokenizer is needed
                from nltk.tokenize import RegexpTokenizer

                tokenizer = RegexpTokenizer(r"[^\W_]+")
            cached = (
                frozenset(self.stop_words_),
                {h.lower() for h in self.keep_headers},
                tokenizer,
                self.lemmatizer() if self.lemmatize else None,
            )
            self.__dict__["_cache"] = cached
        return cached

    def lemmatizer(self) -> Lemmatizer:
        """The fitted (or loaded) lemmatizer; one from the installed WordNet if there is none."""
        return self.__dict__.get("lemmatizer_") or wordnet_lemmatizer()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    def headed(self, text: str) -> str:
        """The document after line skipping and header handling (the steps before
        lower-casing)."""
        _stop, keep, _tokenizer, _lemmatizer = self._compiled()
        if self.skip_lines:
            text = "\n".join(text.split("\n")[self.skip_lines :])
        if self.headers == "strip":
            headers, body = split_headers(text)
            if headers:
                kept = [value for name, value in headers if name in keep]
                text = "\n".join([*kept, body])
        return text

    def _prepared(self, text: str) -> str:
        """The document after line skipping, header handling, lower-casing and e-mail/URL
        removal: what is tokenized."""
        text = self.headed(text)
        if self.lowercase:
            text = text.lower()
        return _drop_words(text, self.remove_emails, self.remove_urls)

    def _words(self, text: str) -> list[str]:
        """Tokens of a prepared piece of text, stop words and short tokens dropped."""
        stop, _keep, tokenizer, lemmatizer = self._compiled()
        if self.letters_only:
            # Same tokens as NLTK's RegexpTokenizer("[a-zA-Z]+") (a test checks this on the
            # whole corpus), several times faster: every non-ASCII character becomes "?" and
            # every non-letter a space, in C.
            raw = text.encode("ascii", "replace").translate(LETTERS).decode("ascii").split()
        else:
            raw = tokenizer.tokenize(text)
        min_len = self.min_token_len
        if min_len > 1:
            words = [t for t in raw if len(t) >= min_len and t not in stop]
        else:
            words = [t for t in raw if t not in stop]
        if lemmatizer is not None:
            lemma_of = lemmatizer.lemma
            return [lemma_of(t) for t in words]
        return words

    def token_chunks(self, text: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[list[str]]:
        """The tokens of one document in consecutive lists, each from about ``chunk_chars``
        characters cut at white space (tokens never span it), so a long document is never a
        list of millions of strings at once.  Their concatenation is :meth:`tokens`."""
        text = self._prepared(text)
        start = 0
        while start < len(text):
            end = start + chunk_chars
            if end < len(text):
                cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
                if cut < start:  # one long run without white space: cut after it
                    found = [i for i in (text.find(" ", end), text.find("\n", end)) if i >= 0]
                    cut = min(found) if found else len(text) - 1
                end = cut + 1
            yield self._words(text[start:end])
            start = end

    def tokens(self, text: str) -> list[str]:
        """The cleaned tokens of one document (``clean`` joins them with spaces)."""
        return [t for chunk in self.token_chunks(text) for t in chunk]

    def clean(self, text: str) -> str:
        return " ".join(self.tokens(text))
