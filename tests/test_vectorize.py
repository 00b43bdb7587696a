import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from serving.vectorize import TermVectorizer, from_sklearn

DOCS = ["the cat sat on the mat", "dogs and cats living together", "the mat the mat the mat",
        "a completely different sentence about orbits", ""]
NEW = ["cat on a mat", "unknown words only", "", "mat mat cat sat together dogs"]


@pytest.mark.parametrize("vectorizer", [
    TfidfVectorizer(),
    TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
    TfidfVectorizer(ngram_range=(2, 3), norm="l1", use_idf=False),
    TfidfVectorizer(binary=True, stop_words="english"),
    CountVectorizer(stop_words="english", max_features=5),
    CountVectorizer(ngram_range=(1, 2)),
])
def test_equals_sklearn(vectorizer, tmp_path) -> None:
    vectorizer.fit(DOCS)
    ours = from_sklearn(vectorizer)
    expected = vectorizer.transform(NEW).toarray()
    np.testing.assert_allclose(ours.transform(NEW).toarray(), expected, rtol=1e-12, atol=1e-15)
    loaded = TermVectorizer.load(tmp_path) if ours.save(tmp_path) else None
    np.testing.assert_allclose(loaded.transform(NEW).toarray(), expected, rtol=1e-12, atol=1e-15)
    for i, doc in enumerate(NEW):
        idx, counts = np.unique(ours.indices(doc), return_counts=True)
        row = np.zeros(ours.n_features)
        row[idx] = ours.weight_row(idx, counts.astype(float))
        np.testing.assert_allclose(row, expected[i], rtol=1e-12, atol=1e-15)


def test_rejects_custom_analyzers() -> None:
    with pytest.raises(ValueError):
        from_sklearn(CountVectorizer(analyzer="char").fit(DOCS))
    with pytest.raises(ValueError):
        from_sklearn(CountVectorizer(preprocessor=str.upper).fit(DOCS))


def test_vocab_file_must_match(tmp_path) -> None:
    from_sklearn(CountVectorizer().fit(DOCS)).save(tmp_path)
    (tmp_path / "vocab.txt").write_text("only\n")
    with pytest.raises(ValueError, match=r"vocab\.txt"):
        TermVectorizer.load(tmp_path)


def _weight_as_before(vectorizer: TermVectorizer, X):
    """TermVectorizer.weight as it was written with scipy's row sums (the reference)."""
    X = X.copy()
    if vectorizer.binary:
        X.data[:] = 1.0
    if vectorizer.sublinear_tf:
        np.log(X.data, out=X.data)
        X.data += 1.0
    if vectorizer.idf is not None:
        X.data *= vectorizer.idf[X.indices]
    if vectorizer.norm is not None:
        scale = np.sqrt(X.multiply(X).sum(axis=1).A1) if vectorizer.norm == "l2" else \
            np.abs(X).sum(axis=1).A1
        scale[scale == 0.0] = 1.0
        X.data /= np.repeat(scale, np.diff(X.indptr))
    return X


@pytest.mark.parametrize("settings", [
    {"sublinear_tf": True, "norm": "l2"}, {"norm": "l1"}, {"binary": True, "norm": "l2"},
    {"norm": None}, {"sublinear_tf": True, "norm": None, "idf": False},
])
@pytest.mark.parametrize("n_rows", [60, 200])  # 200: the last rows empty
def test_weight_pairs_equals_the_coo_path_bit_for_bit(settings: dict, n_rows: int,
                                                      word_scanner: str) -> None:
    # word_scanner: the runs counted by _wordscan.pair_runs, then by numpy alone.
    import scipy.sparse as sp

    settings = dict(settings)
    rng = np.random.default_rng(3)
    n_features = 1000
    idf = None if settings.pop("idf", True) is False else rng.uniform(1, 9, n_features)
    vectorizer = TermVectorizer([f"t{i}" for i in range(n_features)], idf=idf, **settings)
    rows = np.repeat(rng.integers(0, 60, 300), rng.integers(1, 9, 300))  # some rows empty
    cols = rng.integers(0, n_features, rows.size)
    shuffle = rng.permutation(rows.size)
    rows, cols = rows[shuffle], cols[shuffle]
    X = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_rows, n_features))
    X.sum_duplicates()
    expected = _weight_as_before(vectorizer, X)
    got = vectorizer.weight_pairs(rows, cols, n_rows)
    assert got.has_canonical_format and got.shape == expected.shape
    assert np.array_equal(got.indptr, expected.indptr) and got.indptr.dtype == np.int32
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)  # the same bits, not just close
    empty = vectorizer.weight_pairs(rows[:0], cols[:0], 3)
    assert empty.shape == (3, n_features) and empty.nnz == 0


@pytest.mark.parametrize("text", [b"", b"\n", b"a", b"a\nb", b"a\nb\n", b"\n\n\n",
                                  b"x\n" * 5000 + b"tail"])
def test_count_lines_counts_newlines(tmp_path, text: bytes) -> None:
    from serving.vectorize import count_lines

    path = tmp_path / "vocab.txt"
    path.write_bytes(text)
    assert count_lines(path) == text.count(b"\n")
    assert count_lines(path, block=7) == text.count(b"\n")
