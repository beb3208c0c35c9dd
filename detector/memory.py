"""Handing freed heap memory back to the operating system.

glibc keeps memory freed by the model's threads in its arenas: a long-running service's RSS then
sits hundreds of MB above what is live (measured: 1,448 MB after 1,536 analyses, 939 MB after
``malloc_trim(0)``; tracemalloc saw no Python-side growth). The service trims periodically.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - no C library found
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc (musl, macOS)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return free heap pages to the OS where the C library can (glibc); False elsewhere."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
