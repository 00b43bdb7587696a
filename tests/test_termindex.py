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
