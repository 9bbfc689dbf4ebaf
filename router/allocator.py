"""glibc malloc tuning for a process that holds many megabyte-sized image buffers for a short while.

glibc raises its mmap threshold after the first large free, so later image-sized buffers are carved from
the heap and the per-thread arenas of the worker pool, where freed memory fragments and is seldom returned:
resident memory then grows with concurrency and stays high. A fixed threshold keeps every buffer above
128 KiB in a mapping of its own that goes back to the OS when freed (the benchmark's in-flight figure shows
the difference). Only the long-running server applies it; an explicit ``MALLOC_MMAP_THRESHOLD_`` wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024


def pin_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """True when the setting took effect (glibc only; musl and macOS have no ``mallopt`` of this kind)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
