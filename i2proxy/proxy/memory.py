"""Giving memory back to the system once a burst of connections is over.

Measured on the test network (docs/PROXY.md, *Memory after a burst*): after 5 000 SOCKS
connections closed, RSS stayed at its peak because (1) the connections' reference cycles wait
for a full garbage collection, which an idle process rarely triggers, and (2) glibc keeps freed
heap pages until ``malloc_trim``. Both are released here, once the connection count has fallen
well below its peak. What remains is CPython's small-object arenas kept by a few live objects
each; it is reused by the next burst (RSS does not grow burst after burst).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

from i2proxy.log import get_logger

log = get_logger("i2proxy.proxy")


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on a C library without it (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()

try:
    import resource

    _PAGE_SIZE = resource.getpagesize()
except ImportError:  # pragma: no cover - not on Linux
    _PAGE_SIZE = 4096

#: How often the server compares the connection count with its peak.
CHECK_EVERY = 15.0


def rss_bytes() -> int | None:
    """This process's resident set size (Linux), or None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def release_memory() -> dict[str, float | int | None]:
    """Collect cycles, then return free heap pages to the system; what it did, for the log."""
    started = time.perf_counter()
    before = rss_bytes()
    collected = gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
    after = rss_bytes()
    return {
        "collected": collected,
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
        "rss_before_mb": None if before is None else round(before / 2**20, 1),
        "rss_after_mb": None if after is None else round(after / 2**20, 1),
    }


class BurstWatch:
    """When to release: the connection count fell to half its peak or less, by at least
    ``min_drop`` connections, and the last release is ``interval`` seconds ago (a full
    collection stops the event loop for tens of milliseconds; it should be rare).

    The peak is noted at every new connection (:meth:`note`), not only at the checks: a burst
    that comes and goes between two checks, 15 s apart, would otherwise never be seen (5 000
    SOCKS clients ramped in 13.5 s and closed 1 s later: the checks saw 1 969 and 0)."""

    def __init__(self, *, min_drop: int = 256, interval: float = 60.0) -> None:
        self.min_drop = min_drop
        self.interval = interval
        self.peak = 0
        self._last = -float("inf")

    def note(self, count: int) -> None:
        """A connection arrived; ``count`` are open now."""
        if count > self.peak:
            self.peak = count

    def observe(self, count: int, now: float) -> bool:
        """Note the current count; True when memory should be released now."""
        self.peak = max(self.peak, count)
        fallen = self.peak - count >= self.min_drop and count * 2 <= self.peak
        if not fallen or now - self._last < self.interval:
            return False
        self.peak = count
        self._last = now
        return True
