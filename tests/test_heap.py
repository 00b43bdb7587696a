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
    heap.after_request(None, None, {"CONTENT_LENGTH": "100"}, None)
    heap.after_request(None, None, {}, None)
    heap.after_request(None, None, {"CONTENT_LENGTH": "junk"}, None)
    assert calls == []
    heap.after_request(None, None, {"CONTENT_LENGTH": str(heap.TRIM_AFTER_BYTES)}, None)
    assert calls == [1]
