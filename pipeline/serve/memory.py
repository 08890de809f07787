"""Giving a request's big buffers back to the system once the server is idle again.

A decoded sketch, its hint layer and the float tensors made from them are freed after each request,
but glibc's allocator keeps freed memory in its heaps (one per thread the request touched) for
reuse, and raises its mmap threshold after each big free (up to 32 MiB), so buffers of a few MiB to
32 MiB land in those heaps: the resident size grows with every burst. `serve_big_buffers_by_mmap`
fixes the threshold, so a big buffer is mapped on its own and unmapped when freed, and
`trim_freed_memory` hands back what the heaps keep free. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from functools import lru_cache

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def serve_big_buffers_by_mmap(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Allocations over `threshold` bytes get their own mapping, returned when freed; True if set."""
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    log.debug("mmap threshold %d bytes: %s", threshold, "set" if done else "refused")
    return done


def trim_freed_memory() -> None:
    """Return the free memory glibc's heaps hold to the system (malloc_trim)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
