import ctypes.util
from pathlib import Path

import pytest

from serving import heap
from tests.conftest import RunningServer, start_server


def test_tune_and_trim_under_glibc() -> None:
    if ctypes.util.find_library("c") is None:
        return
    assert heap.tune() is True
    heap.trim()


def test_trim_only_after_large_requests(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1))
    monkeypatch.setattr(heap, "free_heap_bytes", lambda: heap.KEEP_FREE_BYTES + 1)
    heap.after_request(None, None, {"CONTENT_LENGTH": "100"}, None)
    heap.after_request(None, None, {}, None)
    heap.after_request(None, None, {"CONTENT_LENGTH": "junk"}, None)
    assert calls == []
    heap.after_request(None, None, {"CONTENT_LENGTH": str(heap.TRIM_AFTER_BYTES)}, None)
    assert calls == [1]


def test_a_large_request_that_left_little_free_is_not_trimmed(monkeypatch) -> None:
    # Trimming after every large request made the next one fault its pages back in.
    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1))
    large = {"CONTENT_LENGTH": str(heap.TRIM_AFTER_BYTES)}
    monkeypatch.setattr(heap, "free_heap_bytes", lambda: heap.KEEP_FREE_BYTES)
    heap.after_request(None, None, large, None)
    assert calls == []
    monkeypatch.setattr(heap, "free_heap_bytes", lambda: None)  # no mallinfo2: as before
    heap.after_request(None, None, large, None)
    assert calls == [1]


def test_free_heap_bytes_sees_freed_memory() -> None:
    if heap.free_heap_bytes() is None:  # not glibc >= 2.33
        return
    heap.tune()
    blocks = [bytearray(4096) for _ in range(2000)]  # 8 MB of heap blocks (under the threshold)
    keep = blocks[::2]
    before = heap.free_heap_bytes()
    del blocks
    assert heap.free_heap_bytes() >= before + 3 * 1024 * 1024
    del keep


@pytest.mark.parametrize("current, expected", [
    (None, "glibc.malloc.hugetlb=1"),
    ("", "glibc.malloc.hugetlb=1"),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ("glibc.malloc.hugetlb=0", None),  # the user's own choice stands
    ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", None),
    ("glibc.malloc.hugetlbx=1", "glibc.malloc.hugetlbx=1:glibc.malloc.hugetlb=1"),
])
def test_tunables_add_huge_pages_once(current: str | None, expected: str | None) -> None:
    assert heap.tunables(current) == expected


@pytest.mark.parametrize("current, expected", [
    (None, None), ("", None), ("glibc.malloc.hugetlbx=1", None),
    ("glibc.malloc.hugetlb=2", "2"),
    ("glibc.malloc.hugetlb", ""),  # named without a value
    ("glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "1"),  # last
])
def test_huge_pages_setting_reads_the_tunable(current: str | None, expected: str | None) -> None:
    assert heap.huge_pages_setting(current) == expected


def test_heap_pages_names_the_mode() -> None:
    assert heap.heap_pages({}) == "4 KB pages"
    assert heap.heap_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == "4 KB pages"
    said = heap.heap_pages({"GLIBC_TUNABLES": "x=1:glibc.malloc.hugetlb=1"})
    assert said.startswith("huge pages asked (glibc.malloc.hugetlb=1; kernel THP: ")


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text.split("[", 1)[1].split("]", 1)[0]


def _heap_thp_eligible(pid: int) -> bool:
    """Whether the kernel may back part of the process's brk heap with transparent huge pages
    (the heap shows as several mappings; glibc asks for its 2 MB-aligned part)."""
    eligible, in_heap = [], False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0]:  # a mapping's first line
            in_heap = line.endswith("[heap]")
        elif in_heap and line.startswith("THPeligible:"):
            eligible.append(line.split()[1] == "1")
    assert eligible, "no [heap] mapping"
    return any(eligible)


def _worker_pids(server: RunningServer) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [int(p) for p in children.read_text().split()]
    return [p for p in pids if "nginx" not in Path(f"/proc/{p}/cmdline").read_text()]


@pytest.mark.parametrize("huge_pages", ["", "0"])
def test_the_server_restarts_itself_with_the_tunable(tiny_model_dir: Path, huge_pages: str,
                                                     ) -> None:
    # `python -m serving.serve` started without GLIBC_TUNABLES execs itself (the same PID)
    # with glibc.malloc.hugetlb=1, and the workers' heaps are THP-eligible; off, neither.
    server = start_server(tiny_model_dir, env={"SERVING_HUGE_PAGES": huge_pages})
    try:
        assert server.post("one post about space").status_code == 200
        for pid in [server.process.pid, *_worker_pids(server)]:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            asked = b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ
            assert asked is (huge_pages == "")
            if _thp_mode() == "madvise":  # "always" makes every heap eligible
                assert _heap_thp_eligible(pid) is (huge_pages == "")
        assert len(_worker_pids(server)) == 1
    finally:
        assert server.stop() == 0
