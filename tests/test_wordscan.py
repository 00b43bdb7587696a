"""serving/_wordscan.c against the numpy code it replaces, and against hostile arguments.

(The whole feature path with and without the extension is compared with the plain Python path
in tests/test_wordhash.py, on the whole 20news test split too; the lookup in
tests/test_hashtable.py.)
"""

import random
from pathlib import Path

import numpy as np
import pytest

from serving import hashtable
from serving.artifact import Model
from serving.hashtable import HashTable
from serving.text import Cleaner
from serving.textfeatures import headed, header_names
from serving.wordhash import _FIRST, STOP, WordHashes, letters_bytes

C = hashtable.COMPILED
pytestmark = pytest.mark.skipif(C is None, reason="serving._wordscan is not built "
                                "(tests/conftest.py's word_scanner fixture fails for that)")

PIECES = ["a@b", "WWW.x", "wWw.", "http://y", ":/", "//", "@", "x", "Orbit", "shuttle", " ",
          "\t", "\n", "\x1c", "\x1f", "\x0b", "ab:", "//cd", "ww", "w.", "launch", "NASA", "?",
          "the", "q", "moon", "orbit", "z" * 200]


def _random_texts(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    texts = []
    for trial in range(n):
        if trial % 5 == 0:  # any bytes at all
            texts.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))))
        else:
            size = rng.randint(0, 40) if trial % 7 else rng.randint(300, 1500)
            texts.append("".join(rng.choice(PIECES) for _ in range(size)).encode())
    return texts


def _hashes(model_dir: Path) -> WordHashes:
    hashes = Model.load(model_dir).classifier.features.hashes
    assert hashes is not None
    return hashes


def test_letters_equals_the_bytes_translation() -> None:
    for raw in _random_texts(0, 1500):
        for emails in (True, False):
            for urls in (True, False):
                assert C.letters(raw, emails, urls) == letters_bytes(raw, emails, urls), (
                    raw, emails, urls)


def test_word_ids_equal_numpy(tiny_model_dir: Path) -> None:
    hashes = _hashes(tiny_model_dir)
    for raw in _random_texts(1, 800):
        buf = letters_bytes(raw, True, True)
        got, expected = hashes.word_ids(buf), hashes.word_ids_numpy(buf)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
        assert got[1].dtype == expected[1].dtype == np.int32


def _pairs(rows: np.ndarray, cols: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def test_features_of_documents_equal_numpy(tiny_model_dir: Path) -> None:
    hashes = _hashes(tiny_model_dir)
    rng = random.Random(2)
    for trial in range(300):
        docs = [letters_bytes(raw, True, True) for raw in _random_texts(trial, rng.randint(1, 6))]
        buf = b" ".join(docs)
        starts = np.cumsum([0] + [len(d) + 1 for d in docs[:-1]]).astype(np.int64)
        first_row = rng.randint(0, 1000)
        rows, cols = hashes.scan(buf, starts, first_row, rows=True)
        assert rows is not None
        token_starts, ids = hashes.word_ids_numpy(buf)
        expected = hashes.features(ids, np.searchsorted(starts, token_starts, side="right") - 1
                                   + first_row)
        assert _pairs(rows, cols) == _pairs(*expected)
        # one document: the same features, no rows
        none, alone = hashes.scan(docs[0], _FIRST, 0, rows=False)
        _, ids = hashes.word_ids_numpy(docs[0])
        assert none is None
        assert sorted(alone.tolist()) == sorted(hashes.features(ids, np.zeros_like(ids))[1]
                                                .tolist())


def test_unigrams_or_bigrams_alone(tiny_model_dir: Path) -> None:
    hashes = _hashes(tiny_model_dir)
    t = hashes.table
    buf = b"orbit shuttle launch orbit nasa shuttle moon the orbit"
    found = np.empty(len(buf) + 2, dtype=np.int32)

    def run(unigrams: bool, bigrams: HashTable | None) -> list[int]:
        pair = (None, None, None) if bigrams is None else (bigrams.keys, bigrams.values,
                                                           bigrams.offsets)
        n = C.features(buf, _FIRST, 0, t.keys, t.values, t.offsets, 2, 50, hashes._unigram,
                       unigrams, *pair, None, found)
        return sorted(found[:n].tolist())

    both = run(True, hashes.index.bigrams)
    assert run(False, None) == []
    assert sorted(run(True, None) + run(False, hashes.index.bigrams)) == both
    _, ids = hashes.word_ids_numpy(buf)
    assert both == sorted(hashes.features(ids, np.zeros_like(ids))[1].tolist())


def test_runs_counts_each_value() -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 50, 1000):
        ordered = np.sort(rng.integers(0, 20, n).astype(np.int32))
        values, counts = np.empty(n, np.int32), np.empty(n, np.float64)
        k = C.runs(ordered, values, counts)
        unique, expected = np.unique(ordered, return_counts=True)
        assert np.array_equal(values[:k], unique) and np.array_equal(counts[:k], expected)


def test_pair_runs_rejects_what_it_cannot_count() -> None:
    packed = np.array([0, 0, 3, 7, 7, 7, 11], dtype=np.int64)
    ptr, ind, cnt = np.empty(5, np.int64), np.empty(7, np.int32), np.empty(7, np.float64)
    assert C.pair_runs(packed, 4, ptr, ind, cnt) == 4  # 4 rows of 4 features
    assert ptr.tolist() == [0, 2, 3, 4, 4] and ind[:4].tolist() == [0, 3, 3, 3]
    assert cnt[:4].tolist() == [2.0, 1.0, 3.0, 1.0]
    for bad in (packed[::-1].copy(), np.array([-1], np.int64), np.array([16], np.int64)):
        with pytest.raises(ValueError, match="sorted or outside"):
            C.pair_runs(bad, 4, ptr, ind, cnt)
    for args in ((packed, 4, ptr, ind[:3], cnt), (packed, 4, ptr, ind, cnt[:3]),
                 (packed, 0, ptr, ind, cnt), (packed.astype(np.int32), 4, ptr, ind, cnt),
                 (packed, 4, ptr.astype(np.int32), ind, cnt), (packed, 2**40, ptr, ind, cnt),
                 (packed, 4, ptr[:0], ind, cnt)):
        with pytest.raises(ValueError, match="wrong type or size"):
            C.pair_runs(*args)
    assert C.pair_runs(packed[:0], 4, ptr, ind, cnt) == 0 and ptr.tolist() == [0] * 5


def test_wrong_arguments_raise_and_corrupt_tables_read_nothing_outside(
        tiny_model_dir: Path) -> None:
    hashes = _hashes(tiny_model_dir)
    t = hashes.table
    buf = b"orbit shuttle launch"
    ids, starts = np.empty(20, np.int32), np.empty(20, np.int64)
    with pytest.raises(ValueError):  # outputs too short
        C.word_ids(buf, t.keys, t.values, t.offsets, 2, 50, ids[:2], starts)
    with pytest.raises(ValueError):  # wrong output types
        C.word_ids(buf, t.keys, t.values, t.offsets, 2, 50, starts, ids)
    with pytest.raises(ValueError):  # values not int32
        C.word_ids(buf, t.keys, t.values.astype(np.int64), t.offsets, 2, 50, ids, starts)
    with pytest.raises(ValueError):  # bucket count not a power of two
        C.word_ids(buf, t.keys, t.values, t.offsets[:-1], 2, 50, ids, starts)
    with pytest.raises(TypeError):
        C.word_ids("orbit", t.keys, t.values, t.offsets, 2, 50, ids, starts)
    with pytest.raises(ValueError):
        C.lookup(t.keys, t.values, t.offsets, t.keys[:3], np.empty(2, np.int32), -1)
    with pytest.raises(ValueError):
        C.runs(np.arange(4, dtype=np.int32), np.empty(2, np.int32), np.empty(4))
    found = np.empty(len(buf) + 2, dtype=np.int32)
    with pytest.raises(ValueError):  # no document start
        C.features(buf, np.zeros(0, np.int64), 0, t.keys, t.values, t.offsets, 2, 50,
                   hashes._unigram, True, None, None, None, None, found)
    with pytest.raises(ValueError):
        C.features(buf, _FIRST, 0, t.keys, t.values, t.offsets, 2, 50, hashes._unigram, True,
                   None, None, None, np.empty(3, np.int64), found)
    # Offsets pointing anywhere, word ids beyond the unigram map: answers, no crash.
    rng = np.random.default_rng(4)
    bad_offsets = rng.integers(-2**31, 2**31 - 1, t.offsets.size).astype(np.int32)
    bad_values = rng.integers(-5, 2**31 - 1, t.values.size).astype(np.int32)
    text = b" ".join(letters_bytes(r, True, True) for r in _random_texts(5, 50))
    room = len(text) // 2 + 1
    for offsets, values in ((bad_offsets, t.values), (t.offsets, bad_values)):
        C.word_ids(text, t.keys, values, offsets, 2, 50, np.empty(room, np.int32),
                   np.empty(room, np.int64))
        out = np.empty(len(text) + 2, dtype=np.int32)
        n = C.features(text, _FIRST, 0, t.keys, values, offsets, 2, 50, hashes._unigram, True,
                       t.keys, values, offsets, None, out)
        assert 0 <= n <= len(text) + 2


def test_stop_words_and_lengths(tiny_model_dir: Path) -> None:
    hashes = _hashes(tiny_model_dir)
    buf = b"the orbit a " + b"o" * (hashes.max_len + 1) + b" orbit"
    _, ids = hashes.word_ids(buf)
    assert STOP not in ids.tolist() and ids.tolist()[1] == -1  # too long: unknown, kept
    assert ids.tolist() == hashes.word_ids_numpy(buf)[1].tolist()


def test_features_across_scan_windows(tiny_model_dir: Path) -> None:
    """_wordscan.c looks tokens up a window at a time: a bigram across two windows, a stop
    word or a short token at a window's edge, and documents starting inside and at the edge of
    a window all give what the numpy path gives."""
    hashes = _hashes(tiny_model_dir)
    rng = random.Random(5)
    words = [b"orbit", b"shuttle", b"launch", b"nasa", b"moon", b"the", b"a", b"q"]
    for trial in range(60):
        docs = [b" ".join(rng.choice(words) for _ in range(rng.choice([1, 63, 64, 65, 200])))
                for _ in range(rng.randint(1, 5))]
        buf = b" ".join(docs)
        starts = np.cumsum([0] + [len(d) + 1 for d in docs[:-1]]).astype(np.int64)
        rows, cols = hashes.scan(buf, starts, 7, rows=True)
        assert rows is not None
        token_starts, ids = hashes.word_ids_numpy(buf)
        expected = hashes.features(ids, np.searchsorted(starts, token_starts, side="right") + 6)
        assert _pairs(rows, cols) == _pairs(*expected), trial

HEADER_PIECES = ["From: a@b.edu", "Subject: Re: orbit", "X-Odd-9: v", "Question: why",
                 "Lines: 3", " folded", "\tfolded ", "  ", "", "not a header", "Keywords:",
                 "Subject:x\x1f ", "9bad: x", "Sub ject: x", "a:", "From: x\r", "SUMMARY: U\x0cV",
                 "Summary:\x1c s \x1d", "Path: a!b", "Organization:\t U  of  X \t",
                 " \x0b cont \x1f", "keywords: k1, k2", "-x: y", "ORGANIZATION: Big"]


def _header_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        lines = [rng.choice(HEADER_PIECES) for _ in range(rng.randint(0, 9))]
        texts.append(rng.choice(["\n", "\r\n", "\n\n", "\n"]).join(lines) + rng.choice(
            ["", "\n", "\n\nbody text", "\n\n\nbody", "\nbody", "\n\n", "\n\nOrbit: x\n\ny"]))
    return texts


@pytest.mark.parametrize("keep", [None, (), ("subject", "Organization", "x-odd-9", "bad name")])
def test_strip_headers_equals_the_cleaner(keep: tuple[str, ...] | None) -> None:
    cleaner = Cleaner() if keep is None else Cleaner(keep_headers=keep)
    cleaner.stop_words_ = []  # fitted: nothing else is read
    names = header_names(cleaner)
    fallbacks = 0
    for text in _header_texts(11, 6000):
        expected = cleaner.headed(text)
        if text.isascii():
            direct = C.strip_headers(text.encode(), *names)
            fallbacks += direct is None
            if direct is not None:
                assert direct.decode() == expected, repr(text)
        got = headed(cleaner, text, names)
        assert (got.decode() if isinstance(got, bytes) else got) == expected, repr(text)
    assert 0 < fallbacks < 3000  # both the C path and the line-by-line path were taken


def test_strip_headers_of_unusual_blocks() -> None:
    cleaner = Cleaner()
    cleaner.stop_words_ = []
    names = header_names(cleaner)
    for text in ["", "S", "Subject:", "Subject:\n\n", "Subject: a\n b\n\tc\n\nbody",
                 "Subject: " + "x" * (1 << 20) + "\n\nbody",  # a block over MAX_HEADER_CHARS
                 "Subject: s\n" + "X-A: b\n" * 5000 + "\nbody",  # more fields than C keeps
                 "Subject: s\nnot a header\n\nbody", "Question: why\n\nbody",
                 "Subject: s\x1f\n\nbody", "Subject: s", "Subject: s\n"]:
        got = headed(cleaner, text, names)
        assert (got.decode() if isinstance(got, bytes) else got) == cleaner.headed(text)


@pytest.mark.data
@pytest.mark.slow
def test_strip_headers_equals_the_cleaner_on_20news() -> None:
    from serving.data import load_splits
    from tests.conftest import DATA_TGZ, need_real_data

    need_real_data()
    cleaner = Cleaner()
    cleaner.stop_words_ = []
    names = header_names(cleaner)
    splits = load_splits(str(DATA_TGZ))
    for text in [*splits.train.texts, *splits.test.texts]:
        got = headed(cleaner, text, names)
        assert (got.decode() if isinstance(got, bytes) else got) == cleaner.headed(text)


@pytest.mark.parametrize("strip", [True, False])
def test_prepare_group_equals_headed_posts_through_letters(strip: bool) -> None:
    """prepare_group writes letters(b" ".join(headed posts)) and each post's offset, and stops
    where TextFeatures.pairs would flush a group or take a post the Python way."""
    cleaner = Cleaner(keep_headers=("subject", "Organization"),
                      headers="strip" if strip else "keep")
    cleaner.stop_words_ = []
    keep, known = header_names(cleaner)
    rng = random.Random(12)
    texts: list = [*_header_texts(13, 400), *(t.decode("latin-1") for t in _random_texts(14, 200)),
                   "caf\u00e9 Subject: x", "", "x" * 700, "a@b.c orbit WWW.x.y Launch"]
    rng.shuffle(texts)
    texts.insert(5, type("Str", (str,), {})("a str subclass"))
    for size, room in ((600, 4096), (4096, 7), (1 << 17, 4096)):
        out, starts = np.empty(size, np.uint8), np.empty(room, np.int64)
        number = 0
        while number < len(texts):
            after, docs, used, stop = C.prepare_group(texts, number, keep, known, strip, True,
                                                      True, out, starts)
            posts = texts[number:after]
            assert docs == len(posts) and stop in (0, 1, 2)
            heads = [cleaner.headed(t).encode() for t in posts]
            assert bytes(out[:used]) == letters_bytes(b" ".join(heads), True, True)
            assert starts[:docs].tolist() == [sum(len(h) + 1 for h in heads[:k])
                                              for k in range(docs)]
            if stop == 0:
                assert after == len(texts)
                break
            nxt = texts[after]
            if stop == 1:  # full: the next post fits alone, but not with these
                assert docs == room or sum(len(h) + 1 for h in heads) + len(
                    cleaner.headed(nxt)) > size
                assert docs > 0
                number = after
                continue
            # the Python way: not an exact ASCII str, an unusual block or too long
            assert (type(nxt) is not str or not nxt.isascii() or len(cleaner.headed(nxt)) > size
                    or (strip and C.strip_headers(nxt.encode(), keep, known) is None))
            number = after + 1
    with pytest.raises(TypeError):
        C.prepare_group(("a tuple",), 0, keep, known, True, True, True, out, starts)
    with pytest.raises(ValueError):
        C.prepare_group(["x"], 0, keep, known, True, True, True, out, np.empty(3, np.int32))
    assert C.prepare_group(["x"], 5, keep, known, True, True, True, out, starts) == (5, 0, 0, 0)


def test_pairs_with_groups_made_in_c_equal_the_numpy_path(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TextFeatures.pairs with prepare_group (small groups: full groups, posts longer than a
    group, non-ASCII posts, unusual header blocks) gives the (row, feature) pairs of the numpy
    path."""
    from serving import textfeatures

    features = Model.load(tiny_model_dir).classifier.features
    texts = [*_header_texts(21, 150), *(t.decode("latin-1") for t in _random_texts(22, 150)),
             "orbit shuttle " * 40, "Subject: orbit shuttle\n\nlaunch nasa moon caf\u00e9"]
    random.Random(23).shuffle(texts)
    want = _pairs(*features.pairs(texts))
    for group, docs in ((1 << 17, 4096), (300, 4096), (2000, 3)):
        monkeypatch.setattr(textfeatures, "GROUP_BYTES", group)
        monkeypatch.setattr(textfeatures, "GROUP_DOCS", docs)
        with monkeypatch.context() as numpy_only:
            numpy_only.setattr(hashtable, "COMPILED", None)
            reference = _pairs(*features.pairs(texts))
        assert _pairs(*features.pairs(texts)) == reference == want
