"""Raw text → weighted term matrix: a fitted :class:`~serving.text.Cleaner` feeding a
:class:`TermVectorizer`, shared by the classifier and the NTM featurizer.

When the cleaner yields letter-only words and the vectorizer uses scikit-learn's default token
pattern, the words go straight to the n-gram step (no re-joining, no second regex pass); the
result is identical (tests compare with scikit-learn on the real corpus). When, in addition,
the cleaner lower-cases without lemmatizing and the vocabulary is a compact term index, a batch
is tokenised and looked up in C or numpy (:mod:`serving.wordhash`), a group of documents at a
time.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving import hashtable, jsondoc
from serving.hashtable import HashTable
from serving.headers import KNOWN_HEADERS
from serving.lemmas import FILE as LEMMAS
from serving.lemmas import Lemmatizer
from serving.text import LETTERS, Cleaner, wordnet_lemmatizer
from serving.vectorize import Rows, TermVectorizer
from serving.wordhash import GROUP_BYTES, TABLE, WordHashes, letters

if TYPE_CHECKING:
    import scipy.sparse as sp

GROUP_DOCS = 4096  # posts in a group of _pairs_compiled at most (their offsets' array)
_ONE_START = np.zeros(1, dtype=np.int64)  # _counts' one offset (always 0)


def save_cleaner(cleaner: Cleaner, path: Path) -> list[Path]:
    """``cleaner.json`` at ``path`` and, for a lemmatizing cleaner, its WordNet data beside it
    (``lemmas.json``)."""
    params = cleaner.get_params()
    params["keep_headers"] = list(params["keep_headers"])
    state = {"params": params, "stop_words": list(cleaner.stop_words_)}
    path.write_text(json.dumps(state, indent=1) + "\n")
    if not cleaner.lemmatize:
        return [path]
    return [path, cleaner.lemmatizer().save(path.with_name(LEMMAS))]


def load_cleaner(path: Path) -> Cleaner:
    state = jsondoc.loads(path.read_bytes(), str(path))
    params = dict(state["params"])
    params["keep_headers"] = tuple(params["keep_headers"])
    cleaner = Cleaner(**params)
    cleaner.stop_words_ = list(state["stop_words"])  # carried, so no stopwords corpus needed
    if cleaner.lemmatize:
        # Carried too (no NLTK, no WordNet corpus); an artifact from before lemmas.json reads
        # the installed WordNet (a clear LookupError without it).
        lemmas = path.with_name(LEMMAS)
        cleaner.lemmatizer_ = Lemmatizer.load(lemmas) if lemmas.is_file() else wordnet_lemmatizer()
    return cleaner


def header_names(cleaner: Cleaner) -> tuple[bytes, bytes]:
    """:func:`headed`'s ``names``: the kept and the known header names, one per line (a kept
    name that is not ``[a-z][a-z0-9-]*`` never matches a header, in either path)."""
    shape = re.compile(r"[a-z][a-z0-9-]*")
    keep = sorted(h.lower() for h in cleaner.keep_headers if shape.fullmatch(h.lower()))
    return "\n".join(keep).encode(), "\n".join(sorted(KNOWN_HEADERS)).encode()


def headed(cleaner: Cleaner, text: str, names: tuple[bytes, bytes]) -> bytes | str:
    """``cleaner.headed(text)``: as bytes when it is ASCII, else as ``str``. An ASCII
    document's header block is read in C when the extension is built (``strip_headers`` in
    ``serving/_wordscan.c``: the same answer, ~10x faster), except in the cases it leaves to
    ``serving/headers.py`` (line boundaries other than ``\\n``). ``names``:
    :func:`header_names` of ``cleaner``."""
    scanner = hashtable.COMPILED
    if (scanner is not None and cleaner.headers == "strip" and not cleaner.skip_lines
            and text.isascii()):
        stripped = scanner.strip_headers(text.encode("ascii"), *names)
        if stripped is not None:
            return stripped
    prepared = cleaner.headed(text)
    return prepared.encode("ascii") if prepared.isascii() else prepared


@dataclass
class TextFeatures:
    cleaner: Cleaner
    vectorizer: TermVectorizer
    word_table: InitVar[HashTable | None] = None  # the saved WordHashes.table, if any
    direct: bool = field(init=False)
    hashes: WordHashes | None = field(init=False, repr=False)

    def __post_init__(self, word_table: HashTable | None) -> None:
        self.direct = self.cleaner.letters_only and self.vectorizer.reads_word_tokens
        self.hashes = self._word_hashes(word_table)
        self._header_names = header_names(self.cleaner)

    def _word_hashes(self, table: HashTable | None = None) -> WordHashes | None:
        """The numpy path's tables, when it gives exactly the plain path's features."""
        cleaner, vectorizer, index = self.cleaner, self.vectorizer, self.vectorizer.index
        if not (self.direct and cleaner.lowercase and not cleaner.lemmatize
                and index is not None and index.compact and index.ngram_range[1] <= 2):
            return None
        stop = set(cleaner.stop_words_) | set(vectorizer.stop_words)
        try:
            return WordHashes(index, stop, max(cleaner.min_token_len, 2), table)
        except ValueError:  # words outside [a-z]+, or a hash collision: the plain path
            return None

    @property
    def n_features(self) -> int:
        return self.vectorizer.n_features

    def indices(self, text: str) -> np.ndarray:
        """Vocabulary indices of one raw document's terms (with repeats)."""
        if self.hashes is not None:
            found = self._counts(text)
            if found is not None:
                return np.repeat(found[0], found[1].astype(np.int64))
            return self.hashes.long_document(self.cleaner._prepared(text), 0)[1]
        return self.plain_indices(text)

    def headed(self, text: str) -> bytes | str:
        """:func:`headed` with this cleaner."""
        return headed(self.cleaner, text, self._header_names)

    def _counts(self, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`WordHashes.one` of a raw document, None when it is longer than a group. An
        ASCII document is lower-cased and rid of e-mails/URLs in bytes (as in :meth:`pairs`);
        any other through ``Cleaner._prepared`` (str.lower and str.split know Unicode)."""
        assert self.hashes is not None
        cleaner = self.cleaner
        scanner = hashtable.COMPILED
        if scanner is not None and not cleaner.skip_lines:  # headed ASCII ≤ its length
            out = np.empty(min(len(text), GROUP_BYTES), dtype=np.uint8)
            _, docs, used, _ = scanner.prepare_group(
                [text], 0, *self._header_names, cleaner.headers == "strip",
                cleaner.remove_emails, cleaner.remove_urls, out, _ONE_START)
            if docs:
                return self.hashes.one(out[:used])
        prepared = self.headed(text)
        if len(prepared) > GROUP_BYTES:
            return None
        if isinstance(prepared, bytes):
            buf = letters(prepared, cleaner.remove_emails, cleaner.remove_urls)
        else:
            prepared = cleaner._prepared(text)
            if len(prepared) > GROUP_BYTES:
                return None
            buf = prepared.encode("ascii", "replace").translate(LETTERS)
        return self.hashes.one(buf)

    def plain_indices(self, text: str) -> np.ndarray:
        """:meth:`indices` by Python tokens, chunk by chunk (any cleaner, any length)."""
        if not self.direct:
            return self.vectorizer.indices(" ".join(self.cleaner.tokens(text)))
        chunks = self.cleaner.token_chunks(text)
        first = next(chunks, [])
        second = next(chunks, None)
        if second is None:  # the usual case: one chunk, looked up at once
            return self.vectorizer.word_indices(first)
        return self._long_indices([first, second], chunks)

    def _long_indices(self, head: list[list[str]], rest: Iterator[list[str]]) -> np.ndarray:
        """:meth:`indices` of a long document, chunk by chunk (memory bounded by a chunk).

        Each chunk is looked up with the last ``n - 1`` terms of the one before it, so n-grams
        across the cut are found; the n-grams lying wholly in those carried terms were found
        with the previous chunk and are subtracted.  The result is the same multiset of indices
        as one lookup of the whole document (in another order, which no caller depends on).
        """
        vectorizer = self.vectorizer
        assert vectorizer.index is not None
        overlap = vectorizer.ngram_range[1] - 1
        found, repeated, carry = [], [], []
        for words in itertools.chain(head, rest):
            terms = vectorizer.word_terms(words)
            if not terms:
                continue
            found.append(vectorizer.index.lookup(carry + terms))
            if carry:
                repeated.append(vectorizer.index.lookup(carry))
            carry = (carry + terms)[-overlap:] if overlap else []
        if not found:
            return np.zeros(0, dtype=np.int64)
        size = vectorizer.n_features
        counts = np.bincount(np.concatenate(found), minlength=size)
        if repeated:
            counts -= np.bincount(np.concatenate(repeated), minlength=size)
        return np.repeat(np.arange(size, dtype=np.int64), counts)

    def pairs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document, feature) pairs of ``texts`` (with repeats), by the numpy path: documents
        are tokenised a group of about ``GROUP_BYTES`` at a time; a longer one alone, slice by
        slice."""
        assert self.hashes is not None
        if hashtable.COMPILED is not None and not self.cleaner.skip_lines:
            return self._pairs_compiled(texts)
        hashes, cleaner = self.hashes, self.cleaner
        emails, urls = cleaner.remove_emails, cleaner.remove_urls
        rows, cols = [], []
        group: list[bytes] = []
        size = first = 0

        def flush() -> None:
            if group:
                r, c = hashes.group(group, first, emails, urls)
                rows.append(r)
                cols.append(c)
                group.clear()

        for number, text in enumerate(texts):
            prepared = self._group_bytes(text)
            if len(prepared) > GROUP_BYTES:
                flush()
                r, c = self._pairs_alone(text, prepared, number)
                rows.append(r)
                cols.append(c)
                continue
            if size + len(prepared) > GROUP_BYTES:
                flush()
            if not group:
                first, size = number, 0
            group.append(prepared)
            size += len(prepared) + 1
        flush()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _group_bytes(self, text: str) -> bytes:
        """A post as a group holds it: an ASCII post's Cleaner.headed (lower-cased and rid of
        e-mails/URLs with its group, wordhash.letters), any other's Cleaner._prepared (str.lower
        and str.split know Unicode) in ASCII, ``?`` for any other character."""
        prepared = self.headed(text)
        if isinstance(prepared, str):
            prepared = self.cleaner._prepared(text).encode("ascii", "replace")
        return prepared

    def _pairs_alone(self, text: str, prepared: bytes, number: int,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(row, feature) pairs of one post numbered ``number``, given its :meth:`_group_bytes`:
        as a group of one, or slice by slice when it is longer than a group."""
        assert self.hashes is not None
        cleaner = self.cleaner
        if len(prepared) > GROUP_BYTES:
            return self.hashes.long_document(cleaner._prepared(text), number)
        return self.hashes.group([prepared], number, cleaner.remove_emails, cleaner.remove_urls)

    def _pairs_compiled(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pairs` with each group made in C (``prepare_group`` in serving/_wordscan.c:
        Cleaner.headed, the join and wordhash.letters of the ASCII posts, without a Python step
        per post); a post it leaves (not ASCII, an unusual header block, longer than a group)
        goes the way :meth:`pairs` takes it, alone."""
        assert self.hashes is not None
        scanner = hashtable.COMPILED
        assert scanner is not None
        hashes, cleaner = self.hashes, self.cleaner
        emails, urls = cleaner.remove_emails, cleaner.remove_urls
        strip = cleaner.headers == "strip"
        keep, known = self._header_names
        texts = texts if isinstance(texts, list) else list(texts)
        out = np.empty(GROUP_BYTES, dtype=np.uint8)
        starts = np.empty(GROUP_DOCS, dtype=np.int64)
        rows, cols = [], []
        number = 0
        while number < len(texts):
            after, docs, used, stop = scanner.prepare_group(texts, number, keep, known, strip,
                                                            emails, urls, out, starts)
            if docs:
                r, c = hashes.scan(out[:used], starts[:docs], number, rows=True)
                assert r is not None
                rows.append(r)
                cols.append(c)
            number = after
            if stop == 2:  # this one the Python way
                text = texts[number]
                r, c = self._pairs_alone(text, self._group_bytes(text), number)
                rows.append(r)
                cols.append(c)
                number += 1
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        found = self.weighted(texts)
        return found.tocsr() if isinstance(found, Rows) else found

    def weighted(self, texts: Sequence[str]) -> Rows | sp.csr_matrix:
        """The TF-IDF rows of ``texts``: CSR arrays without scipy (``Rows``) when the word
        tables are saved, else a scipy matrix."""
        if self.hashes is None:
            return self.vectorizer.transform_indices([self.indices(t) for t in texts])
        rows, cols = self.pairs(texts)
        return self.vectorizer.weight_pair_rows(rows, cols, len(texts))

    def one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One document as sorted unique feature indices and their weights."""
        found = self._counts(text) if self.hashes is not None else None
        if found is not None:
            return found[0], self.vectorizer.weight_row(*found)
        found = np.sort(self.indices(text))
        if not found.size:
            return found, np.zeros(0, dtype=np.float64)
        starts = np.flatnonzero(np.concatenate(([True], found[1:] != found[:-1])))
        counts = np.diff(np.append(starts, found.size)).astype(np.float64)
        return found[starts], self.vectorizer.weight_row(found[starts], counts)

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        tables = [] if self.hashes is None else self.hashes.table.save(directory, TABLE)
        return [*save_cleaner(self.cleaner, directory / "cleaner.json"),
                *self.vectorizer.save(directory), *tables]

    @classmethod
    def load(cls, directory: Path) -> TextFeatures:
        """The saved features; an artifact without the word table (older ones) builds it."""
        return cls(load_cleaner(directory / "cleaner.json"), TermVectorizer.load(directory),
                   HashTable.load(directory, TABLE))
