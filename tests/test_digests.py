"""The start-up sha256 prefetch: digests are reused only for the very file that was hashed."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import digests
from serving.artifact import Model
from serving.errors import ModelLoadError


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(digests, "_thread", None)
    monkeypatch.setattr(digests, "_digests", {})
    yield


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_prefetched_digests_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"a" * 3_000_000)
    (tmp_path / "sub" / "b.txt").write_bytes(b"b")
    digests.prefetch(tmp_path)
    digests.sha256(tmp_path / "a.bin")  # waits for the prefetch
    assert len(digests._digests) == 2

    def not_again(path: object) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(digests, "sha256_file", not_again)
    assert digests.sha256(tmp_path / "a.bin") == sha(b"a" * 3_000_000)
    assert digests.sha256(tmp_path / "sub" / "b.txt") == sha(b"b")


def test_a_file_changed_after_the_prefetch_is_hashed_again(tmp_path: Path) -> None:
    path = tmp_path / "weights.npy"
    path.write_bytes(b"x" * 4096)
    digests.prefetch(tmp_path)
    digests._thread.join()  # type: ignore[union-attr]
    st = path.stat()
    with path.open("r+b") as fh:  # same size, same mtime afterwards: only the ctime moves
        fh.write(b"y")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert digests.sha256(path) == sha(b"y" + b"x" * 4095)


def test_links_are_not_followed_and_missing_files_raise(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    model = tmp_path / "model"
    model.mkdir()
    (model / "link").symlink_to(outside / "secret")
    (model / "dirlink").symlink_to(outside)
    digests.prefetch(model)
    with pytest.raises(FileNotFoundError):
        digests.sha256(model / "gone")
    assert digests._digests == {}


def test_tampered_artifact_is_refused_after_the_prefetch(tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    digests.prefetch(model)
    digests._thread.join()  # type: ignore[union-attr]
    assert digests._digests
    victim = next(p for p in sorted((model / "classifier").iterdir()) if p.stat().st_size > 16)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    st = victim.stat()
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ModelLoadError, match="does not match its sha256"):
        Model.load(model)


def test_verify_after_the_prefetch_accepts_the_intact_artifact(tiny_model_dir: Path,
                                                              tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    digests.prefetch(model)
    assert Model.load(model).classifier is not None


def test_the_first_caller_hashes_beside_the_prefetch(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Both cores hash once the server has imported its libraries: the caller of sha256 takes
    # the files the prefetch thread has not begun, each file hashed once, the largest first.
    import threading
    import time

    for i in range(8):
        (tmp_path / f"f{i}").write_bytes(b"z" * (i + 1))
    hashed: list[tuple[str, str]] = []
    real = digests._hash_one

    def slow(path: str) -> None:
        hashed.append((Path(path).name, threading.current_thread().name))
        time.sleep(0.05)
        real(path)

    monkeypatch.setattr(digests, "_hash_one", slow)
    digests.prefetch(tmp_path)
    assert digests.sha256(tmp_path / "f0") == sha(b"z")
    assert sorted(name for name, _ in hashed) == [f"f{i}" for i in range(8)]
    assert {who for _, who in hashed} == {"sha256-prefetch", threading.current_thread().name}
    assert hashed[0][0] == "f7" and len(digests._digests) == 8


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failed_listing_does_not_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(root: Path) -> list[str]:
        raise RuntimeError("listing failed")

    monkeypatch.setattr(digests, "_listed", broken)
    (tmp_path / "a").write_bytes(b"a")
    digests.prefetch(tmp_path)
    assert digests.sha256(tmp_path / "a") == sha(b"a")  # hashed here, no wait forever
