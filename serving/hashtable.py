"""Exact lookup of unique 64-bit integer keys, many at once in numpy, without a binary search.

``np.searchsorted`` of a few hundred keys into a sorted array of 600k costs ~20 cache-missing
steps per key. Here the keys are grouped by bucket (the top bits of ``key * odd constant``,
Fibonacci hashing, Knuth TAOCP vol. 3 §6.4) and an ``offsets`` array says where each bucket
starts. A lookup gathers, for every query, the ``width`` keys from its bucket's start
(``width`` = the largest bucket rounded up to 8: for 8, the hits of a window are one uint64)
and compares: three gathers and a few element-wise operations, whatever the number of keys.
The key array ends with ``width`` copies of real entries, so a window never runs off the end;
since keys are unique, a key equal to the query anywhere in the window (its bucket's or a
neighbour's, or a copy) is the query's own entry, so the value next to it is the answer.

The three arrays are saved as ``.npy`` files and memory-mapped at load (nothing rebuilt,
pages shared by every process through the page cache).

:meth:`HashTable.get` runs in C when the project's extension ``serving._wordscan`` is built (it
is in the image): the same bucket, the same answer, one loop instead of ~10 numpy calls (~10x
faster for a few hundred keys). Without a C compiler at install time the numpy lookup here
answers alone (:data:`COMPILED` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    from serving import _wordscan as COMPILED
except ImportError:  # installed without a C compiler: the numpy paths only
    COMPILED = None

_MULT = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
PARTS = ("keys", "values", "offsets")
_FEW = 2048  # fewer queries than this: the variant of a lookup with the fewest numpy calls
MAX_WIDTH = 32  # largest bucket (~8 for a million random keys in as many buckets)


def _bits(n: int) -> int:
    """log2 of the bucket count for ``n`` keys: a power of two >= n (at least 2 buckets)."""
    return max(1, (max(n, 1) - 1).bit_length())


@dataclass(frozen=True)
class HashTable:
    keys: np.ndarray  # (n + width,) int64 or uint64: grouped by bucket, then `width` copies
    values: np.ndarray  # (n + width,) int32, the value of each key
    offsets: np.ndarray  # (buckets + 1,) int32: bucket b is keys[offsets[b]:offsets[b + 1]]
    _shift: np.uint64 = field(init=False, repr=False)
    _windows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        keys, values, offsets = self.keys, self.values, self.offsets
        buckets = offsets.size - 1
        if not (keys.ndim == values.ndim == offsets.ndim == 1 and keys.dtype.itemsize == 8
                and keys.dtype.kind in "iu" and values.dtype == np.int32
                and offsets.dtype == np.int32 and keys.shape == values.shape):
            raise ValueError("hash table arrays of the wrong shape or type")
        width = keys.size - int(offsets[-1])
        if buckets < 2 or buckets & (buckets - 1) or not 8 <= width <= MAX_WIDTH \
                or int(offsets[0]) != 0 or np.any(offsets[1:] < offsets[:-1]):
            raise ValueError("hash table offsets do not fit its keys")
        object.__setattr__(self, "_shift", np.uint64(64 - (buckets.bit_length() - 1)))
        # Item i is the bytes of keys[i : i + width] (a view): one gather of whole items fetches
        # every query's window (~8x faster than fancy-indexing a 2-D window view).
        windows = np.ndarray(shape=(keys.size - width + 1,), dtype=np.dtype((np.void, 8 * width)),
                             buffer=np.ascontiguousarray(keys), strides=(8,))
        object.__setattr__(self, "_windows", windows)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    @property
    def width(self) -> int:
        return self.keys.size - self.size

    @classmethod
    def build(cls, keys: np.ndarray, values: np.ndarray) -> HashTable:
        """The table of unique ``keys`` (ValueError on a repeated key) and their int32 values."""
        if keys.ndim != 1 or keys.shape != values.shape:
            raise ValueError("keys and values must be vectors of one length")
        if np.unique(keys).size != keys.size:
            raise ValueError("repeated key in a hash table")
        for bits in range(_bits(keys.size), _bits(keys.size) + 4):
            # More buckets in the (never seen with real keys) case of a crowded one.
            bucket = cls._bucket(keys, np.uint64(64 - bits)).astype(np.int64)
            counts = np.bincount(bucket, minlength=1 << bits)
            width = -(-int(counts.max(initial=1)) // 8) * 8  # a multiple of 8 >= the largest
            if width <= MAX_WIDTH:
                break
        else:
            raise ValueError(f"more than {MAX_WIDTH} keys share a hash bucket")
        order = np.argsort(bucket, kind="stable")
        keys, values = keys[order], values[order].astype(np.int32)
        offsets = np.zeros(counts.size + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        if keys.size == 0:  # nothing to find: keys that no lookup ever reaches
            return cls(np.zeros(width, dtype=keys.dtype), np.full(width, -1, dtype=np.int32),
                       offsets)
        # Copies of real entries (cycled when there are fewer than a window): a query that
        # equals one gets that key's own value.
        pad = np.resize(np.arange(keys.size), width)
        return cls(np.concatenate([keys, keys[pad]]), np.concatenate([values, values[pad]]),
                   offsets)

    @staticmethod
    def _bucket(keys: np.ndarray, shift: np.uint64) -> np.ndarray:
        return (keys.view(np.uint64) * _MULT) >> shift

    def get(self, queries: np.ndarray, missing: int = -1) -> np.ndarray:
        """The value of each query key (int32), ``missing`` where the key is not in the table.
        ``queries``: a vector of the keys' dtype (uint64 and int64 compare through float64)."""
        if queries.dtype != self.keys.dtype:
            raise TypeError(f"{queries.dtype} queries in a table of {self.keys.dtype} keys")
        if not self.size:
            return np.full(queries.size, missing, dtype=np.int32)
        if COMPILED is not None:
            out = np.empty(queries.size, dtype=np.int32)
            COMPILED.lookup(self.keys, self.values, self.offsets, np.ascontiguousarray(queries),
                            out, missing)
            return out
        return self.get_numpy(queries, missing)

    def get_numpy(self, queries: np.ndarray, missing: int = -1) -> np.ndarray:
        """:meth:`get` in numpy (the reference the compiled lookup is tested against)."""
        start = self.offsets[self._bucket(queries, self._shift)]
        width = self.width
        hit = self._windows[start].view(self.keys.dtype).reshape(-1, width) == queries[:, None]
        if width == 8:  # the usual window: its 8 hit bytes are one uint64 word per query
            word = hit.view(np.uint64)[:, 0]
            found = word != 0
            if queries.size < _FEW:
                at = hit.argmax(axis=1)  # one call (each costs ~1 us: few queries)
            else:  # cheaper per query than argmax over rows of 8
                # Which byte is set (the highest, if a window holds a key twice: the same
                # entry): byte j is the bit 8j, whose float64 exponent is 1023 + 8j.
                at = (((word.astype(np.float64).view(np.int64) >> 52) + 1) >> 3) & 7
        else:
            found, at = hit.any(axis=1), hit.argmax(axis=1)
        return np.where(found, self.values[start + at], np.int32(missing))

    def save(self, directory: Path, name: str) -> list[Path]:
        paths = [directory / f"{name}_{part}.npy" for part in PARTS]
        for path, array in zip(paths, (self.keys, self.values, self.offsets), strict=True):
            np.save(path, array, allow_pickle=False)
        return paths

    @classmethod
    def load(cls, directory: Path, name: str) -> HashTable | None:
        """The saved table (memory-mapped), or None when the directory has none."""
        paths = [directory / f"{name}_{part}.npy" for part in PARTS]
        if not all(p.exists() for p in paths):
            return None
        keys, values, offsets = (np.load(p, mmap_mode="r", allow_pickle=False) for p in paths)
        return cls(np.asarray(keys), np.asarray(values), np.asarray(offsets))
