import random
from pathlib import Path

import numpy as np
import pytest

from serving.artifact import Model
from serving.data import load_splits
from serving.hashtable import HashTable
from serving.hyperparameters import parse
from serving.termindex import TermIndex
from serving.text import LETTERS, _drop_words
from serving.textfeatures import TextFeatures
from serving.train import fit_classifier
from serving.wordhash import (
    GROUP_BYTES,
    LOWER,
    STOP,
    TABLE,
    WordHashes,
    drop_marked_words,
    token_keys,
)
from tests.conftest import DATA_TGZ, need_real_data

TRICKY = [
    "",
    "the and of",  # stop words only
    "orbit shuttle",  # one bigram
    "From: a@b.edu\nSubject: Orbit NASA\nLines: 2\n\nThe Shuttle orbit",
    "see WWW.Example.com/orbit or http://x.org/launch and mail x@orbit launch orbit",
    "orbit\u00a0launch@x shuttle\u2003orbit \u00c9lan na\u00efve \u212aelvin orbit",
    "orbit\x1cshuttle\tlaunch\x0bmoon\r\nrocket\x1fmission",
    "a b c d orbit x y launch",  # one-letter tokens are dropped
    "moon",
    "rocket " * 50,
]

# Every test twice: with the C scanner and lookup, and with numpy alone.
pytestmark = pytest.mark.usefixtures("word_scanner")


def _features(model_dir: Path) -> TextFeatures:
    features = Model.load(model_dir).classifier.features
    assert features.hashes is not None  # the numpy path is on for the default cleaner
    return features


def _plain(features: TextFeatures, texts: list[str]):
    hashes, features.hashes = features.hashes, None
    try:
        return features.transform(texts), [np.sort(features.indices(t)) for t in texts]
    finally:
        features.hashes = hashes


def _assert_same(features: TextFeatures, texts: list[str]) -> None:
    expected, singles = _plain(features, texts)
    got = features.transform(texts)
    assert got.shape == expected.shape
    assert (got != expected).nnz == 0
    for text, indices in zip(texts, singles, strict=True):
        assert np.array_equal(np.sort(features.indices(text)), indices)


def test_numpy_path_equals_the_plain_path(tiny_model_dir: Path) -> None:
    features = _features(tiny_model_dir)
    rng = random.Random(0)
    words = [*TRICKY, "orbit", "launch", "nasa", "shuttle", "@", "://", "www.", "\u00e9"]
    generated = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
                 for _ in range(300)]
    _assert_same(features, TRICKY + generated)


def test_numpy_path_without_email_and_url_removal(tiny_corpus: Path) -> None:
    # The tutorial's cleaner: headers kept, e-mails and URLs kept (lower-casing alone).
    hp = parse({"min_df": 1, "headers": "keep", "remove_emails": False, "remove_urls": False})
    features = fit_classifier(hp, load_splits(str(tiny_corpus)).train).features
    assert features.hashes is not None
    _assert_same(features, [*TRICKY, "ORBIT Shuttle LAUNCH", "Orbit orbit ORBIT moon"])


def test_groups_and_long_documents(tiny_model_dir: Path) -> None:
    features = _features(tiny_model_dir)
    long_doc = "orbit shuttle launch " * (GROUP_BYTES // 10)  # longer than a group
    many = [f"orbit launch nasa {i} shuttle moon" for i in range(GROUP_BYTES // 20)]
    run = "orbit launch " + "x" * (GROUP_BYTES * 2) + " shuttle orbit " + "nasa " * 30_000
    texts = ["orbit", long_doc, "shuttle orbit", *many, long_doc, "launch", run]
    _assert_same(features, texts)
    X = features.transform(texts)
    assert X.shape[0] == len(texts) and X[1].nnz > 0 and X[-1].nnz > 0


@pytest.mark.parametrize("few_marks", [512, 0])  # word by word; all at once in numpy
def test_drop_marked_words_equals_drop_words(few_marks: int, monkeypatch) -> None:
    from serving import wordhash

    monkeypatch.setattr(wordhash, "_FEW_MARKS", few_marks)
    rng = random.Random(1)
    pieces = ["a@b", "WWW.x", "www.", "http://y", ":/", "//", "@", "x", "Orbit", " ", "\t",
              "\n", "\x1c", "ab:", "//cd", "ww", "w."]
    for trial in range(600):
        size = rng.randint(0, 30) if trial % 6 else rng.randint(300, 2000)
        text = "".join(rng.choice(pieces) for _ in range(size))
        for emails, urls in ((True, True), (True, False), (False, True)):
            buf = bytearray(text.encode("ascii").translate(LOWER))
            drop_marked_words(buf, emails, urls)
            expected = _drop_words(text.lower(), emails, urls)
            assert bytes(buf).translate(LETTERS).split() == \
                expected.encode().translate(LETTERS).split(), (text, emails, urls)


def test_token_keys_tell_words_apart() -> None:
    starts, lengths, keys = token_keys(b"ab ba  abc ab a")
    assert starts.tolist() == [0, 3, 7, 11, 14] and lengths.tolist() == [2, 2, 3, 2, 1]
    assert keys[0] == keys[3] and len({int(k) for k in keys}) == 4


def test_vocabulary_outside_letters_keeps_the_plain_path() -> None:
    index = TermIndex.build(["orbit", "orbit x9"], (1, 2))
    with pytest.raises(ValueError):
        WordHashes(index, [], 2)


@pytest.mark.data
@pytest.mark.slow
def test_numpy_path_equals_the_plain_path_on_20news(real_model_dir: Path) -> None:
    need_real_data()
    features = _features(real_model_dir)
    texts = load_splits(str(DATA_TGZ)).test.texts
    expected, _ = _plain(features, texts)
    assert (features.transform(texts) != expected).nnz == 0


def test_the_saved_word_table_is_used_and_an_artifact_without_it_loads(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    saved = _features(tiny_model_dir)
    stored = HashTable.load(tiny_model_dir / "classifier", TABLE)
    assert stored is not None and saved.hashes is not None
    assert np.array_equal(saved.hashes.table.keys, stored.keys)  # loaded, not rebuilt
    old = tmp_path / "classifier"
    shutil.copytree(tiny_model_dir / "classifier", old)
    for part in ("keys", "values", "offsets"):
        (old / f"{TABLE}_{part}.npy").unlink()
    rebuilt = TextFeatures.load(old)
    assert rebuilt.hashes is not None
    texts = [*TRICKY, "orbit shuttle launch nasa moon rocket"]
    assert (rebuilt.transform(texts) != saved.transform(texts)).nnz == 0


def test_word_table_maps_words_and_stop_words() -> None:
    index = TermIndex.build(["orbit", "shuttle", "the", "orbit shuttle"], (1, 2))
    hashes = WordHashes(index, ["the", "and", "x9"], 2)
    _, _, keys = token_keys(b"orbit the and shuttle zzz")
    assert hashes.table.get(keys).tolist() == [index.words["orbit"], STOP, STOP,
                                               index.words["shuttle"], -1]
    empty = WordHashes(TermIndex.build([], (1, 2)), [], 2)
    assert empty.word_ids(b"orbit shuttle")[1].tolist() == [-1, -1]


def test_token_keys_are_the_polynomial_hash_of_each_run() -> None:
    from serving.wordhash import _LENGTH_MIX, _P

    rng = random.Random(5)
    buf = " ".join("".join(rng.choice("abcxyz") for _ in range(rng.randint(1, 30)))
                   for _ in range(200)).encode()
    starts, lengths, keys = token_keys(b"  " + buf + b" ")
    words = buf.split()
    assert [int(s) for s in starts[:2]] == [2, 3 + len(words[0])]
    for word, length, key in zip(words, lengths.tolist(), keys.tolist(), strict=True):
        expected = sum(c * pow(_P, i, 1 << 64) for i, c in enumerate(word))
        assert length == len(word)
        assert key == (expected + len(word) * int(_LENGTH_MIX)) % (1 << 64)
