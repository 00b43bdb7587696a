"""Loading training data: 20 Newsgroups (archive, folder, or sklearn's fetcher) or CSV/JSON Lines.

Every loader returns :class:`Corpus` objects with the raw text, integer labels into
``label_names`` (sorted), and per-document ``ids`` and ``titles`` for the recommendation
catalog. Bad input raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving import jsondoc
from serving.body import type_name
from serving.text import subject_of

FETCH_SPEC = "sklearn:20newsgroups"
TABLE_SUFFIXES = (".csv", ".jsonl", ".jsonlines", ".ndjson")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# (csv.field_size_limit is lifted once, in serving.body, which this module imports.)


class DataError(ValueError):
    """Training data that cannot be used, with where the problem is."""


@dataclass
class Corpus:
    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    ids: list[str]
    titles: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Splits:
    train: Corpus
    test: Corpus | None
    source: str


def _corpus(rows: list[tuple[str, str, str, str]], names: list[str] | None = None) -> Corpus:
    """Rows of (text, label, id, title) → Corpus, with labels indexed into sorted names."""
    if names is None:
        names = sorted({label for _, label, _, _ in rows})
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({label for _, label, _, _ in rows} - set(index))
    if unknown:
        raise DataError(f"test labels never seen in training: {unknown[:5]}")
    return Corpus(
        texts=[r[0] for r in rows],
        labels=np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=len(rows)),
        label_names=names,
        ids=[r[2] for r in rows],
        titles=[r[3] for r in rows],
    )


def _newsgroup_rows(items: Iterable[tuple[str, str, bytes]]) -> list[tuple[str, str, str, str]]:
    rows = []
    for group, name, raw in sorted(items, key=lambda item: (item[0], item[1])):
        text = raw.decode("latin-1")
        rows.append((text, group, f"{group}/{name}", subject_of(text)))
    return rows


def _read_tar(path: Path) -> dict[str, list[tuple[str, str, bytes]]]:
    """Members ``<split dir>/<group>/<message>`` of a 20news archive, grouped by split dir."""
    splits: dict[str, list[tuple[str, str, bytes]]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.strip("./").split("/")
                if not member.isfile() or len(parts) < 3:
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    splits.setdefault(parts[-3], []).append((parts[-2], parts[-1], handle.read()))
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from exc
    if not splits:
        raise DataError(f"{path}: no <split>/<newsgroup>/<message> files in the archive")
    return splits


def _read_group_dir(path: Path) -> list[tuple[str, str, bytes]]:
    items = [
        (group.name, msg.name, msg.read_bytes())
        for group in path.iterdir() if group.is_dir() and not group.name.startswith(".")
        for msg in group.iterdir() if msg.is_file()
    ]
    if not items:
        raise DataError(f"{path}: no <newsgroup>/<message> files")
    return items


def _pick_splits(parts: dict[str, list], where: str) -> tuple[list, list | None]:
    train = [k for k in parts if "train" in k.lower()]
    test = [k for k in parts if "test" in k.lower()]
    if len(train) != 1 or len(test) > 1:
        raise DataError(f"{where}: expected one *train* and at most one *test* folder, "
                        f"found {sorted(parts)}")
    return parts[train[0]], (parts[test[0]] if test else None)


def _utf8(path: Path) -> str:
    """The file as text; DataError naming the line of the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02X}: {exc.reason}); "
                        "save the file as UTF-8") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Rows with the line each record starts on (a quoted field may span lines)."""
    reader = csv.DictReader(io.StringIO(_utf8(path), newline=""), strict=True)
    if not reader.fieldnames:
        raise DataError(f"{path}: empty file (expected a header with text,label)")
    start = reader.line_num + 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}:{start}: malformed CSV in the record starting on this line "
                        f"({exc}; an unbalanced quote?)") from None


def _table_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
        return
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = jsondoc.loads(line, f"{path} line {number}")
            except jsondoc.JSONError as exc:
                raise DataError(f"{path}:{number}: not a JSON object ({exc.message})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object with text and label")
            yield number, obj


def load_table(path: Path) -> list[tuple[str, str, str, str]]:
    """A CSV (with header) or JSON Lines file with ``text``, ``label`` and optional ``id``,
    ``title`` → rows."""
    rows = []
    for number, row in _table_rows(path):
        for column in ("text", "label"):
            if row.get(column) in (None, ""):
                raise DataError(f"{path}:{number}: missing or empty '{column}'")
        text, label = row["text"], row["label"]
        if not isinstance(text, str):
            raise DataError(f"{path}:{number}: 'text' must be a string")
        if not isinstance(label, str | int | float) or isinstance(label, bool):
            raise DataError(f"{path}:{number}: 'label' must be a string or a number, "
                            f"not {type_name(label)}")
        doc_id = str(row.get("id") or f"{path.stem}:{number}")
        title = str(row.get("title") or subject_of(text))
        rows.append((text, str(label), doc_id, title))
    if not rows:
        raise DataError(f"{path}: empty file (no records)")
    return rows


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _archives_in(path: Path) -> list[Path]:
    """The 20news archives directly in a folder (a SageMaker channel holding the archive)."""
    return sorted(p for p in path.iterdir() if not p.name.startswith(".") and _is_archive(p))


def _read_archives(paths: list[Path]) -> dict[str, list[tuple[str, str, bytes]]]:
    """The splits of one or more archives, merged by split folder name."""
    splits: dict[str, list[tuple[str, str, bytes]]] = {}
    for path in paths:
        for name, items in _read_tar(path).items():
            splits.setdefault(name, []).extend(items)
    return splits


def _one_archive_split(paths: list[Path], where: Path) -> list[tuple[str, str, str, str]]:
    """One split from a folder of archives: they must hold a single split folder."""
    splits = _read_archives(paths)
    if len(splits) != 1:
        raise DataError(f"{where}: the archives hold several splits {sorted(splits)}; "
                        "give this split alone")
    return _newsgroup_rows(next(iter(splits.values())))


def _table_dir(path: Path) -> list[tuple[str, str, str, str]] | None:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    return [row for f in files for row in load_table(f)] if files else None


def load_one(path: Path) -> list[tuple[str, str, str, str]]:
    """One split from a table file, a folder of tables, or a ``<newsgroup>/<message>`` folder."""
    if path.is_file():
        if path.suffix.lower() in TABLE_SUFFIXES:
            return load_table(path)
        raise DataError(f"{path}: unsupported file type (use .csv, .jsonl, or a 20news archive)")
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    rows = _table_dir(path)
    if rows is not None:
        return rows
    archives = _archives_in(path)
    if archives and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return _one_archive_split(archives, path)
    return _newsgroup_rows(_read_group_dir(path))


def _channel_archives(path: Path) -> list[Path]:
    if not path.is_dir() or any(
        (p.is_dir() and not p.name.startswith(".")) or p.suffix.lower() in TABLE_SUFFIXES
        for p in path.iterdir()
    ):
        return []
    return _archives_in(path)


def load_splits(data: str, test: str | None = None) -> Splits:
    """Training (and test) data from ``data``: a 20news ``.tar.gz``, a folder holding
    ``*train*``/``*test*`` folders, a single-split folder or table, or ``sklearn:20newsgroups``."""
    if data == FETCH_SPEC:
        return _fetch()
    path = Path(data)
    test_rows = None
    # A folder holding archives and nothing else to read (SageMaker's train channel with
    # 20news-bydate.tar.gz in it) is read as those archives.
    archives = [path] if _is_archive(path) else _channel_archives(path)
    if archives:
        train_items, test_items = _pick_splits(_read_archives(archives), str(path))
        train_rows = _newsgroup_rows(train_items)
        test_rows = _newsgroup_rows(test_items) if test_items else None
    elif path.is_dir() and any("train" in p.name.lower() and p.is_dir() for p in path.iterdir()):
        subdirs = {p.name: p for p in path.iterdir() if p.is_dir()}
        train_dir, test_dir = _pick_splits(subdirs, str(path))  # type: ignore[arg-type]
        train_rows = load_one(train_dir)  # type: ignore[arg-type]
        test_rows = load_one(test_dir) if test_dir else None  # type: ignore[arg-type]
    else:
        train_rows = load_one(path)
    if test is not None:
        test_rows = load_one(Path(test))
    train = _corpus(train_rows)
    if len(train.label_names) < 2:
        raise DataError(f"{data}: need at least two labels, found {train.label_names}")
    return Splits(train, _corpus(test_rows, train.label_names) if test_rows else None, data)


def _fetch() -> Splits:  # pragma: no cover - needs the internet
    """sklearn's downloader, for users online (data cached in ~/scikit_learn_data)."""
    from sklearn.datasets import fetch_20newsgroups

    parts = []
    for subset in ("train", "test"):
        bunch = fetch_20newsgroups(subset=subset, shuffle=False)
        rows = [
            (text, bunch.target_names[t], "/".join(Path(f).parts[-2:]), subject_of(text))
            for text, t, f in zip(bunch.data, bunch.target, bunch.filenames, strict=True)
        ]
        parts.append(rows)
    train = _corpus(parts[0])
    return Splits(train, _corpus(parts[1], train.label_names), FETCH_SPEC)


def fingerprint(corpus: Corpus) -> str:
    """sha256 over the ids, labels and texts, in order: identifies the training data."""
    import hashlib

    digest = hashlib.sha256()
    buffer = io.BytesIO()
    for doc_id, label, text in zip(corpus.ids, corpus.labels, corpus.texts, strict=True):
        buffer.write(f"{doc_id}\t{corpus.label_names[label]}\t".encode())
        buffer.write(text.encode("utf-8", "surrogatepass"))
        buffer.write(b"\0")
    digest.update(buffer.getvalue())
    return digest.hexdigest()
