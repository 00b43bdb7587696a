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
