"""Term → feature-index lookup that stays small for large n-gram vocabularies.

A Python dict of 500k unigram and bigram strings costs ~100 bytes a term in every server
process. Here only the distinct *words* live in a dict; a bigram is the int64 key
``id(a) * n_words + id(b)`` in a :class:`~serving.hashtable.HashTable` (~16 bytes a term plus
4 a bucket, memory-mapped and shared by the forked workers; no bigram strings are built per
request).
Vocabularies with n-grams longer than 2 fall back to a plain dict of terms.

The words are kept as the bytes of ``index_words.txt`` (one per line); the word → id dict is
built on first use: the numpy path (:mod:`serving.wordhash`) looks words up by hash and never
needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise, repeat
from pathlib import Path

import numpy as np

from serving.hashtable import HashTable

FILES = ("index_words.txt", "index_unigram.npy")
BIGRAMS = "index_bigrams"  # the bigram table's files: index_bigrams_{keys,values,offsets}.npy
# What artifacts written before the table held: the bigram keys sorted, their features.
SORTED_FILES = ("index_bigram_keys.npy", "index_bigram_features.npy")
# Feature index → term, for explanations: saved, and memory-mapped at load (only the pages an
# explanation reads become resident); older artifacts build it when first asked.
CODES = "index_feature_codes.npy"
_NO_TERM = np.iinfo(np.int64).min
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass
class TermIndex:
    ngram_range: tuple[int, int]
    word_lines: bytes  # the words in id order, each followed by a newline (UTF-8)
    unigram: np.ndarray  # word id → feature index, or -1
    bigrams: HashTable  # int64 bigram key → feature index
    terms: dict[str, int] | None = None  # only for n-grams longer than 2
    saved_codes: np.ndarray | None = None  # CODES as loaded (memory-mapped), if saved

    @property
    def bigram_keys(self) -> np.ndarray:
        """The int64 keys of the bigram features (in table order)."""
        return self.bigrams.keys[: self.bigrams.size]

    @property
    def bigram_features(self) -> np.ndarray:
        """The feature index of each of :attr:`bigram_keys`."""
        return self.bigrams.values[: self.bigrams.size]

    @cached_property
    def words(self) -> dict[str, int]:
        """Word → word id."""
        return {w: i for i, w in enumerate(self.word_lines.decode().split("\n")[:-1])}

    def feature_codes(self) -> np.ndarray:
        """One int64 per feature naming its term: ``-1 - word id`` for a word, the bigram key
        ``id(a) * n_words + id(b)`` for a bigram (ValueError if a feature has no term)."""
        if self.saved_codes is None:
            self.saved_codes = self._build_codes()
        return self.saved_codes

    def _build_codes(self) -> np.ndarray:
        codes = np.full(self.n_features, _NO_TERM, dtype=np.int64)
        has_unigram = np.flatnonzero(self.unigram >= 0)
        if (self.unigram[has_unigram] >= codes.size).any() or (
                self.bigram_features >= codes.size).any():
            raise ValueError("the term index does not name every feature")
        codes[self.unigram[has_unigram]] = -1 - has_unigram
        codes[self.bigram_features] = self.bigram_keys
        if (codes == _NO_TERM).any():
            raise ValueError("the term index does not name every feature")
        return codes

    @property
    def n_words(self) -> int:
        return self.unigram.size

    @property
    def n_features(self) -> int:
        if self.terms is not None:
            return len(self.terms)
        return int((self.unigram >= 0).sum()) + self.bigrams.size

    @property
    def compact(self) -> bool:
        return self.terms is None

    @classmethod
    def build(cls, terms: list[str], ngram_range: tuple[int, int]) -> TermIndex:
        if ngram_range[1] > 2:
            return cls(ngram_range, b"", _EMPTY, HashTable.build(_EMPTY, _EMPTY),
                       {term: i for i, term in enumerate(terms)})
        words: dict[str, int] = {}
        unigram_pairs: list[tuple[int, int]] = []
        bigram_pairs: list[tuple[int, int, int]] = []
        for feature, term in enumerate(terms):
            parts = term.split(" ")
            ids = [words.setdefault(part, len(words)) for part in parts]
            if len(ids) == 1:
                unigram_pairs.append((ids[0], feature))
            else:
                bigram_pairs.append((ids[0], ids[1], feature))
        unigram = np.full(len(words), -1, dtype=np.int64)
        for word_id, feature in unigram_pairs:
            unigram[word_id] = feature
        pairs = np.asarray(bigram_pairs, dtype=np.int64).reshape(-1, 3)
        keys = pairs[:, 0] * len(words) + pairs[:, 1]
        lines = "".join(f"{w}\n" for w in words).encode()
        index = cls(ngram_range, lines, unigram, HashTable.build(keys, pairs[:, 2]))
        index.__dict__["words"] = words  # already built (insertion order = id order)
        return index

    def lookup(self, tokens: list[str]) -> np.ndarray:
        """Feature indices of the n-grams of ``tokens`` (with repeats; unknown ones dropped)."""
        if self.terms is not None:
            return self._lookup_terms(tokens)
        ids = np.fromiter(map(self.words.get, tokens, repeat(-1)), dtype=np.int64,
                          count=len(tokens))
        return self.lookup_ids(ids)

    def lookup_ids(self, ids: np.ndarray) -> np.ndarray:
        """:meth:`lookup` of the tokens' word ids (-1: not a word of the index)."""
        low, high = self.ngram_range
        parts = []
        if low == 1:
            found = self.unigram[ids[ids >= 0]]
            parts.append(found[found >= 0])
        if high == 2 and ids.size > 1 and self.bigrams.size:
            first, second = ids[:-1], ids[1:]
            known = (first >= 0) & (second >= 0)
            found = self.bigrams.get(first[known].astype(np.int64) * self.n_words + second[known])
            parts.append(found[found >= 0])
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _lookup_terms(self, tokens: list[str]) -> np.ndarray:
        assert self.terms is not None
        low, high = self.ngram_range
        grams = list(tokens) if low == 1 else []
        if low <= 2 <= high:
            grams.extend([a + " " + b for a, b in pairwise(tokens)])
        for n in range(max(low, 3), min(high, len(tokens)) + 1):
            grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        found = [j for j in map(self.terms.get, grams) if j is not None]
        return np.fromiter(found, dtype=np.int64, count=len(found))

    def save(self, directory: Path) -> list[Path]:
        if not self.compact:
            return []
        paths = [directory / name for name in FILES]
        paths[0].write_bytes(self.word_lines)
        np.save(paths[1], self.unigram.astype(np.int32), allow_pickle=False)
        np.save(directory / CODES, self.feature_codes(), allow_pickle=False)
        return [*paths, directory / CODES, *self.bigrams.save(directory, BIGRAMS)]

    @classmethod
    def load(cls, directory: Path, ngram_range: tuple[int, int]) -> TermIndex | None:
        """The saved compact index, or None when the directory has none."""
        paths = [directory / name for name in FILES]
        if not all(p.exists() for p in paths):
            return None
        lines = paths[0].read_bytes()
        lines.decode()  # UTF-8, or a ValueError now rather than at first use
        # Memory-mapped as stored (int32 indices, int64 keys): nothing copied, pages shared
        # through the page cache.
        unigram = np.asarray(np.load(paths[1], mmap_mode="r", allow_pickle=False))
        if not (unigram.ndim == 1 and unigram.dtype.kind == "i"):
            raise ValueError(f"{directory}: the term index arrays are not integer vectors")
        bigrams = HashTable.load(directory, BIGRAMS)
        if bigrams is None:  # an artifact from before the table: build it from the sorted keys
            if not all((directory / name).exists() for name in SORTED_FILES):
                return None
            keys, features = (np.load(directory / name, allow_pickle=False)
                              for name in SORTED_FILES)
            if not (keys.ndim == features.ndim == 1 and keys.dtype.kind == "i"
                    and features.dtype.kind == "i" and keys.shape == features.shape):
                raise ValueError(f"{directory}: the term index arrays are not integer vectors")
            bigrams = HashTable.build(keys.astype(np.int64), features)
        if bigrams.keys.dtype != np.int64:
            raise ValueError(f"{directory}: the bigram keys are not int64")
        if unigram.shape != (lines.count(b"\n"),) or (lines and not lines.endswith(b"\n")):
            raise ValueError(f"{directory}: the term index files do not agree")
        index = cls(ngram_range, lines, unigram, bigrams)
        if (directory / CODES).exists():
            codes = np.asarray(np.load(directory / CODES, mmap_mode="r", allow_pickle=False))
            if codes.shape != (index.n_features,) or codes.dtype != np.int64:
                raise ValueError(f"{directory}: {CODES} does not match the term index")
            index.saved_codes = codes
        return index
