import io
import tarfile
from pathlib import Path

import pytest

from serving.data import DataError, load_splits, load_table
from tests.conftest import DATA_TGZ, need_real_data, write_tiny_csv


def test_folder_with_train_and_test(tiny_corpus: Path) -> None:
    splits = load_splits(str(tiny_corpus))
    assert len(splits.train) == 120 and splits.test is not None and len(splits.test) == 40
    assert splits.train.label_names == sorted(splits.train.label_names)
    assert splits.train.ids[0].count("/") == 1 and splits.train.titles[0]


def test_tar_archive(tmp_path: Path, tiny_corpus: Path) -> None:
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_corpus / "tiny-train", arcname="tiny-train")
        tar.add(tiny_corpus / "tiny-test", arcname="tiny-test")
    splits = load_splits(str(archive))
    assert len(splits.train) == 120 and len(splits.test) == 40


def test_single_split_folder_and_separate_test(tiny_corpus: Path) -> None:
    splits = load_splits(str(tiny_corpus / "tiny-train"), str(tiny_corpus / "tiny-test"))
    assert splits.test is not None and len(splits.test) == 40


def test_csv_and_jsonl(tmp_path: Path) -> None:
    rows = load_table(write_tiny_csv(tmp_path / "d.csv"))
    assert len(rows) == 80 and rows[0][2] == "rec.autos-0" and rows[0][3] == "doc 0"
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"text": "a b", "label": "x"}\n\n{"text": "c d", "label": "y", "id": 7}\n')
    assert [r[2] for r in load_table(jl)] == ["d:1", "7"]


@pytest.mark.parametrize("content, message", [
    ("text,label\n", "empty file"),
    ("", "empty file"),
    ("text\nhello\n", "missing or empty 'label'"),
    ("text,label\nhello,\n", ":2: missing or empty 'label'"),
])
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_table(path)


def test_jsonl_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not a JSON object"):
        load_table(path)
    path.write_bytes(b"text,label\n\xff\xfe,x\n")
    csv_path = path.with_suffix(".csv")
    path.rename(csv_path)
    with pytest.raises(DataError, match="not UTF-8"):
        load_table(csv_path)


def test_other_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_splits(str(tmp_path / "missing"))
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable tar"):
        load_splits(str(bad))
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
    with pytest.raises(DataError, match="no <split>"):
        load_splits(str(empty))
    one = tmp_path / "one.csv"
    one.write_text("text,label\nhello,a\n")
    with pytest.raises(DataError, match="two labels"):
        load_splits(str(one))


@pytest.mark.data
def test_real_archive_counts() -> None:
    need_real_data()
    splits = load_splits(str(DATA_TGZ))
    assert (len(splits.train), len(splits.test), len(splits.train.label_names)) == (11314, 7532, 20)


def _archive(path: Path, corpus: Path, *splits: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for split in splits:
            tar.add(corpus / split, arcname=f"./{split}")
    return path


def test_channel_folder_holding_the_archive(tmp_path: Path, tiny_corpus: Path) -> None:
    """SageMaker's train channel with the 20news archive in it (as uploaded) is read as the
    archive: its train split, and its test split unless a test channel is given."""
    channel = tmp_path / "train"
    channel.mkdir()
    _archive(channel / "20news-bydate.tar.gz", tiny_corpus, "tiny-train", "tiny-test")
    splits = load_splits(str(channel))
    assert len(splits.train) == 120 and splits.test is not None and len(splits.test) == 40
    # A test channel holding a one-split archive replaces the archive's test split.
    test_channel = tmp_path / "test"
    test_channel.mkdir()
    _archive(test_channel / "only-test.tgz", tiny_corpus, "tiny-test")
    assert len(load_splits(str(channel), str(test_channel)).test) == 40


def test_channel_folder_holding_one_archive_per_split(tmp_path: Path, tiny_corpus: Path) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    _archive(channel / "a-train.tar.gz", tiny_corpus, "tiny-train")
    _archive(channel / "b-test.tar", tiny_corpus, "tiny-test")
    splits = load_splits(str(channel))
    assert (len(splits.train), len(splits.test)) == (120, 40)


def test_channel_archive_errors(tmp_path: Path, tiny_corpus: Path) -> None:
    both = tmp_path / "test"
    both.mkdir()
    _archive(both / "all.tar.gz", tiny_corpus, "tiny-train", "tiny-test")
    with pytest.raises(DataError, match="several splits"):
        load_splits(str(tiny_corpus / "tiny-train"), str(both))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "20news.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable tar"):
        load_splits(str(broken))


@pytest.mark.data
def test_real_archive_in_a_channel_folder(tmp_path: Path) -> None:
    need_real_data()
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / DATA_TGZ.name).symlink_to(DATA_TGZ)
    splits = load_splits(str(channel))
    assert (len(splits.train), len(splits.test)) == (11314, 7532)
