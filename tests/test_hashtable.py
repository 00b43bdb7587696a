from pathlib import Path

import numpy as np
import pytest

from serving.hashtable import _MULT, MAX_WIDTH, HashTable

# Every test twice: with the C scanner and lookup, and with numpy alone.
pytestmark = pytest.mark.usefixtures("word_scanner")


def _reference(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    table = dict(zip(keys.tolist(), values.tolist(), strict=True))
    return np.array([table.get(q, -1) for q in queries.tolist()], dtype=np.int32)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 9, 100, 5000])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_hits_and_misses_equal_a_dict(n: int, dtype: type, tmp_path: Path) -> None:
    rng = np.random.default_rng(n)
    keys = np.unique(rng.integers(0, 2**62, 2 * n + 1, dtype=np.int64)).astype(dtype)[:n]
    rng.shuffle(keys)
    values = rng.integers(-2, 2**31 - 1, n).astype(np.int32)
    queries = np.concatenate([keys, rng.integers(0, 2**62, 3 * n + 5).astype(dtype),
                              keys[: n // 2]])
    rng.shuffle(queries)
    table = HashTable.build(keys, values)
    assert table.size == n and table.width % 8 == 0 and table.width <= MAX_WIDTH
    expected = _reference(keys, values, queries)
    assert np.array_equal(table.get(queries), expected)
    assert table.get(queries[:0]).shape == (0,)
    table.save(tmp_path, "t")
    loaded = HashTable.load(tmp_path, "t")
    assert loaded is not None and isinstance(loaded.keys, np.memmap | np.ndarray)
    assert np.array_equal(loaded.get(queries), expected)
    assert np.array_equal(loaded.get(queries, missing=-7)[expected == -1], np.full(
        int((expected == -1).sum()), -7))


def test_keys_that_share_a_bucket() -> None:
    # key * MULT = j (mod 2**64) for small j: all 20 keys land in bucket 0 (a 24-key window).
    inverse = np.uint64(pow(int(_MULT), -1, 1 << 64))
    keys = np.arange(1, 21, dtype=np.uint64) * inverse
    values = np.arange(20, dtype=np.int32) * 10
    table = HashTable.build(keys, values)
    assert table.width == 24
    assert np.array_equal(table.get(keys), values)
    assert np.array_equal(table.get(keys + np.uint64(1)), np.full(20, -1))
    with pytest.raises(ValueError):  # more than MAX_WIDTH in one bucket, however many buckets
        HashTable.build(np.arange(1, MAX_WIDTH + 2, dtype=np.uint64) * inverse,
                        np.arange(MAX_WIDTH + 1))


def test_repeated_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated key"):
        HashTable.build(np.array([5, 9, 5], dtype=np.int64), np.arange(3))


def test_queries_of_another_dtype_are_refused() -> None:
    table = HashTable.build(np.array([1, 2], dtype=np.int64), np.arange(2))
    with pytest.raises(TypeError):
        table.get(np.array([1], dtype=np.uint64))


def test_missing_or_inconsistent_files(tmp_path: Path) -> None:
    assert HashTable.load(tmp_path, "t") is None
    table = HashTable.build(np.arange(50, dtype=np.int64), np.arange(50))
    table.save(tmp_path, "t")
    offsets = table.offsets.copy()
    offsets[3], offsets[4] = offsets[4] + 1, offsets[3]  # not ascending
    np.save(tmp_path / "t_offsets.npy", offsets)
    with pytest.raises(ValueError):
        HashTable.load(tmp_path, "t")
    np.save(tmp_path / "t_offsets.npy", table.offsets[:-1])  # not a power of two of buckets
    with pytest.raises(ValueError):
        HashTable.load(tmp_path, "t")
    np.save(tmp_path / "t_offsets.npy", table.offsets)
    np.save(tmp_path / "t_values.npy", table.values.astype(np.int64))
    with pytest.raises(ValueError):
        HashTable.load(tmp_path, "t")


def test_many_queries_into_a_table_whose_windows_repeat_keys() -> None:
    # Three keys: the window (8) holds each of them several times (the copies after the end);
    # thousands of queries take the lookup's per-query variant (no argmax).
    keys = np.array([11, 22, 33], dtype=np.int64)
    table = HashTable.build(keys, np.array([1, 2, 3]))
    queries = np.tile(np.array([22, 11, 5, 33], dtype=np.int64), 1000)
    assert np.array_equal(table.get(queries), np.tile([2, 1, -1, 3], 1000))
    assert np.array_equal(table.get(queries[:4]), [2, 1, -1, 3])
