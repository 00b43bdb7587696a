"""glibc malloc settings that keep a forked worker's private memory small.

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which
the temporaries of a big request (a 1,000-document batch) come from the brk heap and stay in
the worker after the request, fragmenting it. A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``
also turns the dynamic raise off) gives blocks of ``MMAP_THRESHOLD`` and more back to the
kernel when they are freed; the trim threshold beside it returns a free heap top of that size
at once, and ``malloc_trim(0)`` after a large request returns the heap's free pages
(glibc: https://man7.org/linux/man-pages/man3/mallopt.3.html, malloc_trim.3). Elsewhere (musl,
macOS) these are no-ops.

Giving memory back is not free: the next request faults the pages in again (zero-filled by the
kernel, a fault a 4 KB page). The threshold is 4 MB: a 1,000-post request's temporaries (most
of them 0.1-4 MB numpy arrays) then reuse heap pages instead of mapping fresh ones. Measured on
this project's 2-core VM (2 workers, 16 requests of 1,000 real posts, medians): 128 KB gave
~290 ms a request, 1 MB ~200 ms, 2 MB ~160 ms, 4 MB ~150 ms, 8 MB ~170 ms (glibc's default
~165 ms), for ~8 MB more PSS over the three processes than 128 KB.

Huge pages: a request that touches ~9 MB of heap pages the kernel took back (the freed top of
the heap, returned at the trim threshold) faults them in again, a 4 KB page at a time: ~2,400
faults for a 1,000-post request, ~4.6 us each on this VM (~11 ms). With glibc's tunable
``glibc.malloc.hugetlb=1`` (glibc >= 2.35; https://www.gnu.org/software/libc/manual/html_node/
Memory-Allocation-Tunables.html) malloc asks for transparent huge pages
(``madvise(MADV_HUGEPAGE)``) where it grows the heap, so those pages come back 2 MB at a time:
~290 faults, the request ~10 % faster, PSS +3.6 MB (interleaved A/B, 3 rounds). glibc reads
tunables when the process starts, so :func:`tunables` gives the ``GLIBC_TUNABLES`` a server
should start with: the image's entry point sets it, and ``python -m serving.serve`` re-executes
itself with it once (``SERVING_HUGE_PAGES=0`` turns both off). The kernel gives huge pages only
when ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``; otherwise
the tunable changes nothing.

The heap is trimmed after a large request only when more than ``KEEP_FREE_BYTES`` of it is free
(``mallinfo2``, glibc >= 2.33; with an older glibc, always): a worker keeps at most that much
idle heap, and a request that left more (a 6 MB body's temporaries) still gives it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_AFTER_BYTES = 256 * 1024  # a request body at least this large: trim after it ...
KEEP_FREE_BYTES = 16 * 1024 * 1024  # ... if its heap holds more free bytes than this


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
TUNABLES_ENV = "GLIBC_TUNABLES"


def huge_pages_setting(current: str | None) -> str | None:
    """The value ``current`` (a ``GLIBC_TUNABLES`` string, ``name=value`` items joined by ``:``)
    gives ``glibc.malloc.hugetlb`` (its last item wins; "" without ``=``), None without one."""
    found = None
    for item in (current or "").split(":"):
        name, _, value = item.partition("=")
        if name == HUGE_PAGES_TUNABLE:
            found = value
    return found


def tunables(current: str | None) -> str | None:
    """The ``GLIBC_TUNABLES`` value that adds ``glibc.malloc.hugetlb=1`` to ``current``, or None
    when ``current`` already sets that tunable (to any value: the user's choice stands)."""
    if huge_pages_setting(current) is not None:
        return None
    return f"{current}:{HUGE_PAGES_TUNABLE}=1" if current else f"{HUGE_PAGES_TUNABLE}=1"


def heap_pages(environ: Any) -> str:
    """How this process's heap gets its pages, for the start-up log line."""
    value = huge_pages_setting(environ.get(TUNABLES_ENV))
    if value in (None, "", "0"):
        return "4 KB pages"
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = f.read().split("[", 1)[1].split("]", 1)[0]
    except (OSError, IndexError):
        mode = "unknown"
    return f"huge pages asked ({HUGE_PAGES_TUNABLE}={value}; kernel THP: {mode})"


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


class _MallInfo2(ctypes.Structure):  # struct mallinfo2 (glibc >= 2.33), all size_t
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_MALLINFO2 = getattr(_LIBC, "mallinfo2", None) if _LIBC is not None else None
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2
    _MALLINFO2.argtypes = []


def free_heap_bytes() -> int | None:
    """Free bytes held in malloc's heap (``mallinfo2().fordblks``), None where unknown."""
    return None if _MALLINFO2 is None else int(_MALLINFO2().fordblks)


def tune() -> bool:
    """Fix the mmap threshold (and the trim threshold beside it); True under glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        _LIBC.mallopt(M_TRIM_THRESHOLD, MMAP_THRESHOLD))


def trim() -> None:
    """Give the heap's free pages back to the kernel."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def after_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    """gunicorn's ``post_request`` hook: trim after a large request that left much free."""
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if size >= TRIM_AFTER_BYTES:
        free = free_heap_bytes()
        if free is None or free > KEEP_FREE_BYTES:
            trim()
