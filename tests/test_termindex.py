import random

import numpy as np

from serving.termindex import TermIndex


def _reference(terms: list[str], tokens: list[str], ngram_range: tuple[int, int]) -> list[int]:
    vocab = {t: i for i, t in enumerate(terms)}
    low, high = ngram_range
    grams = []
    for n in range(low, high + 1):
        grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return sorted(vocab[g] for g in grams if g in vocab)


def test_compact_lookup_equals_a_term_dict(tmp_path) -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(60)]
    for ngram_range in [(1, 1), (1, 2), (2, 2), (1, 3)]:
        grams = set(rng.sample(words, 40))
        grams |= {f"{rng.choice(words)} {rng.choice(words)}" for _ in range(300)}
        if ngram_range[1] == 3:
            grams |= {" ".join(rng.sample(words, 3)) for _ in range(50)}
        terms = sorted(grams)
        index = TermIndex.build(terms, ngram_range)
        assert index.compact == (ngram_range[1] <= 2)
        assert index.n_features == len(terms) or not index.compact
        for _ in range(50):
            tokens = [rng.choice([*words, "unknown"]) for _ in range(rng.randint(0, 30))]
            expected = _reference(terms, tokens, ngram_range)
            assert sorted(index.lookup(tokens).tolist()) == expected
        saved = index.save(tmp_path)
        if index.compact:
            loaded = TermIndex.load(tmp_path, ngram_range)
            assert loaded is not None
            probe = [rng.choice(words) for _ in range(100)]
            assert np.array_equal(np.sort(loaded.lookup(probe)), np.sort(index.lookup(probe)))
        else:
            assert saved == []


def test_an_index_saved_before_the_bigram_table_still_loads(tmp_path) -> None:
    # Older artifacts hold the bigram keys sorted and their features; the table is built.
    rng = random.Random(1)
    words = [f"w{i}" for i in range(40)]
    terms = sorted(set(words) | {f"{rng.choice(words)} {rng.choice(words)}" for _ in range(200)})
    index = TermIndex.build(terms, (1, 2))
    index.save(tmp_path)
    for part in ("keys", "values", "offsets"):
        (tmp_path / f"index_bigrams_{part}.npy").unlink()
    assert TermIndex.load(tmp_path, (1, 2)) is None  # neither form: the caller builds from terms
    order = np.argsort(index.bigram_keys)
    np.save(tmp_path / "index_bigram_keys.npy", index.bigram_keys[order])
    np.save(tmp_path / "index_bigram_features.npy", index.bigram_features[order])
    loaded = TermIndex.load(tmp_path, (1, 2))
    assert loaded is not None and loaded.n_features == len(terms)
    for _ in range(30):
        tokens = [rng.choice([*words, "unknown"]) for _ in range(rng.randint(0, 30))]
        assert sorted(loaded.lookup(tokens).tolist()) == _reference(terms, tokens, (1, 2))


def test_empty_bigram_vocabulary() -> None:
    index = TermIndex.build(["orbit", "shuttle"], (1, 2))
    assert index.bigrams.size == 0 and index.n_features == 2
    assert sorted(index.lookup(["orbit", "shuttle", "orbit"]).tolist()) == [0, 0, 1]


def test_feature_codes_are_saved_and_memory_mapped(tmp_path) -> None:
    import pytest

    from serving.termindex import CODES

    words = ["nasa", "orbit", "moon", "car"]
    terms = sorted([*words, "nasa orbit", "orbit moon", "moon nasa"])
    index = TermIndex.build(terms, (1, 2))
    built = index.feature_codes()
    ids = index.words
    for feature, term in enumerate(terms):  # -1 - word id, or id(a) * n_words + id(b)
        parts = term.split(" ")
        want = -1 - ids[parts[0]] if len(parts) == 1 else \
            ids[parts[0]] * index.n_words + ids[parts[1]]
        assert built[feature] == want
    assert CODES in {p.name for p in index.save(tmp_path)}
    loaded = TermIndex.load(tmp_path, (1, 2))
    assert loaded is not None and loaded.saved_codes is not None
    assert isinstance(loaded.saved_codes.base, np.memmap)  # mapped, not read
    assert np.array_equal(loaded.feature_codes(), built)
    (tmp_path / CODES).unlink()  # an artifact written before the codes were saved
    older = TermIndex.load(tmp_path, (1, 2))
    assert older is not None and older.saved_codes is None
    assert np.array_equal(older.feature_codes(), built)
    np.save(tmp_path / CODES, built[:-1])
    with pytest.raises(ValueError, match=CODES):
        TermIndex.load(tmp_path, (1, 2))
