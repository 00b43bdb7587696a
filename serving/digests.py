"""sha256 of a model directory's files, computed in a background thread during start-up.

``serving.artifact.verify`` checks every file of the artifact against the manifest's sha256
before anything is loaded: ~80 MB for the 20news model, 0.2-0.3 s of reading and hashing on a
2-core machine. File reads and ``hashlib`` release the GIL, so ``serving.serve`` starts
:func:`prefetch` first and imports numpy and gunicorn meanwhile; the first :func:`sha256`
hashes the files the prefetch has not begun yet beside it (the largest first), then hands
``verify`` the digest of a file hashed here when it is still that file (same device, inode,
size, mtime and ctime before, after and now: a write in between changes the ctime), and hashes
the file itself otherwise. Nothing else is taken from the prefetch: which files to check and
what they must hash to still come from the manifest, in ``verify``.

No numpy here: this module is imported before the heavy libraries.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

MAX_FILES = 10_000  # a model directory is a few dozen files; stop walking a stranger's tree
MAX_BYTES = 8 << 30

Identity = tuple[int, int, int, int, int]

_lock = threading.Lock()
_thread: threading.Thread | None = None
_digests: dict[tuple[int, int], tuple[Identity, str]] = {}
_pending: list[str] = []  # files listed and not yet begun, the largest last
_listing = threading.Event()  # set once the prefetch has listed its files


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _regular_files(root: Path) -> list[str]:
    """Regular files under ``root`` (symbolic links not followed), at most MAX_FILES."""
    found: list[str] = []
    stack = [str(root)]
    while stack and len(found) < MAX_FILES:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        found.append(entry.path)
        except OSError:
            continue
    return found[:MAX_FILES]


def _listed(root: Path) -> list[str]:
    """The files to hash, smallest first (they are taken from the end: the largest first, so
    that two hashing threads end close together), at most MAX_BYTES in all."""
    sized = []
    for path in _regular_files(root):
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sized.append((st.st_size, path))
    sized.sort()
    kept, total = [], 0
    for size, path in sized:
        if total + size > MAX_BYTES:
            break
        kept.append(path)
        total += size
    return kept


def _hash_one(path: str) -> None:
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            if not stat.S_ISREG(before.st_mode):
                return
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            after = os.fstat(fh.fileno())
    except OSError:
        return
    if _identity(before) == _identity(after):
        _digests[(after.st_dev, after.st_ino)] = (_identity(after), digest.hexdigest())


def _work() -> None:
    """Hash the listed files until none is left (the prefetch thread, and :func:`sha256`'s
    caller when it comes before the end: both cores hash then)."""
    while True:
        with _lock:
            if not _pending:
                return
            path = _pending.pop()
        _hash_one(path)


def _hash_all(root: Path) -> None:
    try:
        files = _listed(root)
        with _lock:
            _pending[:] = files
    finally:
        _listing.set()  # whatever happened: sha256() waits for it
    _work()


def prefetch(model_dir: Path | str) -> None:
    """Start hashing the regular files under ``model_dir`` in a daemon thread (once)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _listing.clear()
        _thread = threading.Thread(target=_hash_all, args=(Path(model_dir),),
                                   name="sha256-prefetch", daemon=True)
        _thread.start()


def sha256(path: Path) -> str:
    """``path``'s sha256: the prefetched digest if the file is unchanged since, else computed.
    Waits for the prefetch to finish (it must be over before gunicorn forks its workers)."""
    with _lock:
        thread = _thread
    if thread is not None:
        _listing.wait()
        _work()  # the files nobody has begun: hashed here, beside the prefetch thread
        thread.join()
    try:
        now = os.stat(path)
    except OSError:
        return sha256_file(path)  # raises the error the caller reports
    known = _digests.get((now.st_dev, now.st_ino))
    if known is not None and known[0] == _identity(now):
        return known[1]
    return sha256_file(path)
