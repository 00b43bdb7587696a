import ctypes.util

from serving import heap


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
