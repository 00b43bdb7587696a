"""Tokenise and look up many documents at once in numpy, without a Python string per token.

The per-token work of the plain path (``str.split``, a stop-word test, a dict lookup, a list per
document) costs more than the model. Here a batch of prepared documents (``Cleaner._prepared``:
headers handled, lower-cased, e-mails and URLs dropped) becomes one byte buffer in which every
byte that is not an ASCII letter is a space (the same ``bytes.translate`` the plain path uses),
and then, in numpy over the whole buffer:

- token boundaries are where letters start and stop;
- each token's key is a 64-bit polynomial hash of its bytes (prefix sums modulo 2**64, so a
  token's hash is ``(H[end] - H[start]) * P**-start``) mixed with its length;
- a :class:`~serving.hashtable.HashTable` of the vocabulary's word keys (and the stop words',
  marked to be dropped) gives each token its word id;
- unigram and bigram features follow from the word ids as in :class:`TermIndex.lookup`, with
  bigrams never spanning two documents.

When the project's C extension is built (``serving/_wordscan.c``; it is in the image), the same
steps run as C loops over the bytes, with the same keys and tables: :func:`letters`,
:meth:`WordHashes.word_ids` and :meth:`WordHashes.scan` (features with their documents), ~3x
faster per post than the numpy calls, which stay as the fallback and the reference.

The output equals the plain path's (``tests/test_wordhash.py`` compares them on the whole
20news test split, with and without the extension). A hash collision between a token and a
vocabulary word (odds ~2**-64 per pair for ordinary text; tokens longer than the longest
vocabulary word are never looked up) could only change the features of the document that
contains it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from serving import hashtable
from serving.hashtable import HashTable
from serving.termindex import TermIndex
from serving.text import LETTERS

GROUP_BYTES = 1 << 17  # bytes tokenised at a time (bounds the temporaries: ~40 bytes each)
_P = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_SPACE = 32
_EMPTY = np.zeros(0, dtype=np.int64)
_FIRST = np.zeros(1, dtype=np.int64)  # one document, starting at 0
STOP = -2  # word id of a token to drop (stop word or too short); -1 is an unknown word
TABLE = "wordhash"  # the saved word table's files: wordhash_{keys,values,offsets}.npy


def _powers(base: int, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)  # wraps modulo 2**64, as intended


class _Tables:
    """P**i and P**-i modulo 2**64 for every position of a group (built once, shared)."""

    pow: np.ndarray | None = None
    inv: np.ndarray | None = None

    @classmethod
    def get(cls, n: int) -> tuple[np.ndarray, np.ndarray]:
        if cls.pow is None or cls.pow.size < n:
            size = max(n, GROUP_BYTES + 1)
            cls.pow, cls.inv = _powers(_P, size), _powers(_P_INV, size)
        assert cls.inv is not None
        return cls.pow, cls.inv


def token_keys(buf: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start offsets, lengths and keys of the letter runs of ``buf`` (letters and spaces only)."""
    a = np.frombuffer(b" " + buf + b" ", dtype=np.uint8)  # a[i + 1] is buf[i]
    letter = a != _SPACE
    edges = np.flatnonzero(letter[1:] != letter[:-1])  # run starts and ends alternate (buf's)
    power, inverse = _Tables.get(a.size)
    prefix = np.cumsum(a * power[: a.size])  # prefix[i + 1] - prefix[j + 1]: P**(j+1) x buf[j:i]
    at = prefix[edges]
    starts = edges[0::2]
    lengths = edges[1::2] - starts
    keys = (at[1::2] - at[0::2]) * inverse[starts + 1]
    keys += lengths.astype(np.uint64) * _LENGTH_MIX
    return starts, lengths, keys


# bytes.translate tables: ASCII lower-casing (str.lower on ASCII text), and str.split's ASCII
# white space (\t \n \v \f \r, \x1c-\x1f, space).
LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))
LOWER_LETTERS = LOWER.translate(LETTERS)  # lower-case, then every non-letter a space
_FEW_MARKS = 512  # at most this many e-mail/URL marks in a group: found by bytes.find
_WHITE = np.zeros(256, dtype=bool)
_WHITE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_WHITE_TO_SPACE = bytes(32 if _WHITE[c] else c for c in range(256))


def drop_marked_words(buf: bytearray, emails: bool, urls: bool) -> None:
    """Blank, in place, every white-space-delimited word of lower-case ASCII ``buf`` holding
    ``@`` (``emails``) or ``://`` / ``www.`` (``urls``): ``text._drop_words`` on bytes."""
    patterns = ([b"@"] if emails and b"@" in buf else []) + (
        [p for p in (b"://", b"www.") if p in buf] if urls else [])
    if not patterns:
        return
    if sum(buf.count(p) for p in patterns) <= _FEW_MARKS:  # the usual case: a word at a time
        spaced = buf.translate(_WHITE_TO_SPACE)
        for pattern in patterns:
            at = spaced.find(pattern)
            while at >= 0:
                start = spaced.rfind(b" ", 0, at) + 1
                end = spaced.find(b" ", at)
                end = len(spaced) if end < 0 else end
                buf[start:end] = b" " * (end - start)
                at = spaced.find(pattern, end)
        return
    a = np.frombuffer(buf, dtype=np.uint8)
    marks = []
    for pattern in patterns:
        hit = a[: a.size - len(pattern) + 1] == pattern[0]
        for shift, byte in enumerate(pattern[1:], 1):
            hit &= a[shift : a.size - len(pattern) + 1 + shift] == byte
        marks.append(np.flatnonzero(hit))
    # The word holding a mark runs from the white space before it to the one after it.
    white = np.flatnonzero(_WHITE[a])
    bounds = np.concatenate(([-1], white, [a.size]))
    word = np.unique(np.searchsorted(white, np.concatenate(marks)))  # whites before the word
    starts, ends = bounds[word] + 1, bounds[word + 1]
    lengths = ends - starts
    # Every byte of those words: each word's start, repeated, plus 0, 1, ... within the word.
    first = np.cumsum(lengths) - lengths
    a[np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))] = _SPACE


def letters(raw: bytes, emails: bool, urls: bool) -> bytes:
    """ASCII text lower-cased, rid of the words with e-mail addresses (``emails``) or URLs
    (``urls``), every byte but a letter a space: ``Cleaner._prepared`` after the headers, then
    ``LETTERS``, in bytes: one C pass when the extension is built, else bytes.translate."""
    if hashtable.COMPILED is not None:
        return hashtable.COMPILED.letters(raw, emails, urls)
    return letters_bytes(raw, emails, urls)


def letters_bytes(raw: bytes, emails: bool, urls: bool) -> bytes:
    """:func:`letters` without the extension (the reference it is tested against)."""
    if emails or urls:
        lowered = bytearray(raw.translate(LOWER))
        drop_marked_words(lowered, emails, urls)
        return bytes(lowered).translate(LETTERS)
    return raw.translate(LOWER_LETTERS)


_LOWER_LETTERS = bytes(range(97, 123))


def _is_word(word: str) -> bool:
    return word.isascii() and word.isalpha() and word.islower()


class WordHashes:
    """Word id (or :data:`STOP`) by token key, for one :class:`TermIndex` and stop-word list.

    ``table``: the saved :attr:`table` of the same index and stop words (a trained artifact
    holds it: nothing to hash at load); built here when None."""

    def __init__(self, index: TermIndex, stop_words: Iterable[str], min_len: int,
                 table: HashTable | None = None) -> None:
        lines = index.word_lines
        # Every word [a-z]+ (deleting letters and newlines leaves nothing), one per line.
        if lines.translate(None, _LOWER_LETTERS + b"\n") or b"\n\n" in lines \
                or lines.startswith(b"\n"):
            raise ValueError("the vocabulary has words that are not lower-case ASCII letters")
        stop = sorted(w for w in set(stop_words) if _is_word(w))
        ends = np.flatnonzero(np.frombuffer(lines, dtype=np.uint8) == 10)
        longest = int(np.diff(ends, prepend=-1).max(initial=1)) - 1
        self.max_len = max(longest, *map(len, stop), 0)
        self.table = self._table(lines, stop, index.n_words) if table is None else table
        if self.table.keys.dtype != np.uint64:
            raise ValueError("the word table's keys are not uint64")
        self.index = index
        self.min_len = min_len
        self.n_words = index.n_words
        # word id → unigram feature, and a last -1 that an unknown word (id -1) reads
        self._unigram = np.append(index.unigram, -1).astype(np.int32)

    @staticmethod
    def _table(lines: bytes, stop: list[str], n_words: int) -> HashTable:
        _, _, keys = token_keys(lines.replace(b"\n", b" "))
        if keys.size != n_words:
            raise ValueError("vocabulary words did not tokenise one to one")
        ids = np.arange(keys.size, dtype=np.int64)
        _, _, stop_keys = token_keys(" ".join(stop).encode())
        # A stop word is dropped before the vocabulary is consulted, as in the plain path.
        ids[np.isin(keys, stop_keys)] = STOP
        stop_keys = np.unique(stop_keys[~np.isin(stop_keys, keys)])
        if np.unique(keys).size != keys.size:
            raise ValueError("two vocabulary words share a hash key")
        return HashTable.build(np.concatenate([keys, stop_keys]),
                               np.concatenate([ids, np.full(stop_keys.size, STOP)]))

    def word_ids(self, buf: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Token start offsets and word ids (-1 unknown) of ``buf``, dropped tokens removed: in
        one C pass when the extension is built (``serving/_wordscan.c``), else in numpy."""
        scanner = hashtable.COMPILED
        if scanner is None:
            return self.word_ids_numpy(buf)
        room = len(buf) // 2 + 1
        ids = np.empty(room, dtype=np.int32)
        starts = np.empty(room, dtype=np.int64)
        table = self.table
        n = scanner.word_ids(buf, table.keys, table.values, table.offsets, self.min_len,
                             self.max_len, ids, starts)
        return starts[:n], ids[:n]

    def word_ids_numpy(self, buf: bytes) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`word_ids` in numpy (the reference the C scanner is tested against)."""
        starts, lengths, keys = token_keys(buf)
        ids = self.table.get(keys)
        ids[lengths > self.max_len] = -1
        ids[lengths < self.min_len] = STOP
        keep = ids != STOP
        return starts[keep], ids[keep]

    def features(self, ids: np.ndarray, docs: np.ndarray, carry: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(document, feature) pairs of consecutive word ids (with repeats, unknowns dropped);
        bigrams only within a document. ``carry``: the word id before ``ids`` in the same
        document (a long document's previous slice), for the bigram across the cut."""
        index = self.index
        low, high = index.ngram_range
        rows, cols = [], []
        if low == 1:
            known = ids >= 0
            found = index.unigram[ids[known]]
            hit = found >= 0
            rows.append(docs[known][hit])
            cols.append(found[hit])
        if carry is not None and ids.size:
            ids = np.concatenate(([carry], ids))
            docs = np.concatenate((docs[:1], docs))
        if high == 2 and ids.size > 1 and index.bigrams.size:
            first, second = ids[:-1], ids[1:]
            pair = (first >= 0) & (second >= 0) & (docs[:-1] == docs[1:])
            found = index.bigrams.get(first[pair].astype(np.int64) * self.n_words + second[pair])
            hit = found >= 0
            rows.append(docs[:-1][pair][hit])
            cols.append(found[hit])
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(rows), np.concatenate(cols)

    def scan(self, buf: bytes, doc_starts: np.ndarray, first_row: int, rows: bool,
             ) -> tuple[np.ndarray | None, np.ndarray]:
        """:meth:`features` of :meth:`word_ids` in one C pass (``serving/_wordscan.c``; only
        when the extension is built): the documents start at ``doc_starts`` (int64 offsets in
        ``buf``, the first 0) and are numbered from ``first_row`` (returned when ``rows``)."""
        scanner = hashtable.COMPILED
        assert scanner is not None
        index, table = self.index, self.table
        low, high = index.ngram_range
        bigrams = index.bigrams if high == 2 and index.bigrams.size else None
        pair_table = (None, None, None) if bigrams is None else (
            bigrams.keys, bigrams.values, bigrams.offsets)
        found = np.empty(len(buf) + 2, dtype=np.int32)
        row = np.empty(len(buf) + 2, dtype=np.int64) if rows else None
        n = scanner.features(buf, doc_starts, first_row, table.keys, table.values, table.offsets,
                             self.min_len, self.max_len, self._unigram, low == 1, *pair_table,
                             row, found)
        # Copies of the used part: the bound above is ~8x what a real text fills, and a view
        # would keep it allocated (a 1,000-post request kept ~20 MB of them, all its groups').
        return (None if row is None else row[:n].copy()), found[:n].copy()

    def one(self, buf: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique feature indices of one document of at most a group, as letters and
        spaces (:func:`letters`, or a prepared document's bytes through ``LETTERS``), and how
        often each occurs: :meth:`features` in the fewest numpy calls (each costs ~1 us)."""
        scanner = hashtable.COMPILED
        if scanner is not None:  # no misses to drop; the runs counted in C
            features = self.scan(buf, _FIRST, 0, rows=False)[1]
            features.sort()
            values = np.empty(features.size, dtype=np.int32)
            counts = np.empty(features.size, dtype=np.float64)
            k = scanner.runs(features, values, counts)
            return values[:k], counts[:k]
        features = self._one_numpy(buf)
        if features is None:
            return _EMPTY, np.zeros(0, dtype=np.float64)
        features.sort()
        features = features[np.searchsorted(features, 0):]  # the misses (-1) sort first
        if not features.size:
            return _EMPTY, np.zeros(0, dtype=np.float64)
        edge = np.empty(features.size + 1, dtype=bool)
        edge[0] = edge[-1] = True
        np.not_equal(features[1:], features[:-1], out=edge[1:-1])
        edges = np.flatnonzero(edge)
        return features[edges[:-1]], np.diff(edges).astype(np.float64)

    def _one_numpy(self, buf: bytes) -> np.ndarray | None:
        """The features of :meth:`one` in numpy, with misses (-1); None for none."""
        ids = self.word_ids(buf)[1]
        index = self.index
        low, high = index.ngram_range
        # -1 (unknown) reads the -1 appended to the unigram map.
        found = [self._unigram[ids]] if low == 1 else []
        if high == 2 and ids.size > 1 and index.bigrams.size:
            first, second = ids[:-1], ids[1:]
            keys = first.astype(np.int64) * self.n_words + second
            keys[(first | second) < 0] = -1  # a pair with an unknown word: no key of ours
            found.append(index.bigrams.get(keys))
        if not found:
            return None
        return np.concatenate(found) if len(found) > 1 else found[0]

    def long_document(self, prepared: str, row: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`group` of one prepared document longer than a group, a slice of about
        ``GROUP_BYTES`` at a time cut at a space (memory bounded by a slice), the last word of
        each slice carried into the next for bigrams."""
        buf = prepared.encode("ascii", "replace").translate(LETTERS)
        rows, cols = [], []
        carry: int | None = None
        start = 0
        while start < len(buf):
            end = min(start + GROUP_BYTES, len(buf))
            if end < len(buf):
                cut = buf.rfind(b" ", start, end)
                if cut <= start:  # a run of letters longer than a slice: no word of ours
                    cut = buf.find(b" ", start + 1)
                    start = len(buf) if cut < 0 else cut
                    carry = -1
                    continue
                end = cut
            _, ids = self.word_ids(buf[start:end])
            r, c = self.features(ids, np.full(ids.size, row, dtype=np.int64), carry)
            rows.append(r)
            cols.append(c)
            if ids.size:
                carry = int(ids[-1])
            start = end
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(rows), np.concatenate(cols)

    def group(self, prepared: list[bytes], first_row: int, emails: bool = False,
              urls: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(row, feature) pairs of documents numbered from ``first_row``, as bytes: either
        prepared (``Cleaner._prepared``, encoded to ASCII with ``?`` for any other character)
        or ASCII documents still to be lower-cased and rid of words with e-mail addresses
        (``emails``) or URLs (``urls``), done here for the whole group."""
        buf = letters(b" ".join(prepared), emails, urls)
        compiled = hashtable.COMPILED is not None
        if len(prepared) == 1 and not compiled:
            _, ids = self.word_ids(buf)
            return self.features(ids, np.full(ids.size, first_row, dtype=np.int64))
        lengths = np.fromiter(map(len, prepared), dtype=np.int64, count=len(prepared))
        doc_starts = np.zeros(len(prepared), dtype=np.int64)
        np.cumsum(lengths[:-1] + 1, out=doc_starts[1:])
        if compiled:
            rows, found = self.scan(buf, doc_starts, first_row, rows=True)
            assert rows is not None
            return rows, found
        starts, ids = self.word_ids(buf)
        docs = np.searchsorted(doc_starts, starts, side="right") - 1 + first_row
        return self.features(ids, docs)
