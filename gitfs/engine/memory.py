"""Giving memory back: what a process of the mount frees is kept by the allocator for reuse
unless it is told to return it, and a mount that was busy once would then stay that big."""

from __future__ import annotations

import ctypes

from gitfs.tuning import MMAP_THRESHOLD

# glibc's mallopt parameter (malloc.h): allocations this big and over are mapped on their own.
_M_MMAP_THRESHOLD = -3


def bound_allocator() -> None:
    """Has every allocation of MMAP_THRESHOLD bytes or more mapped on its own, so that freeing it
    returns it at once. glibc's own threshold starts at 128 KiB but rises to the size of each
    mapped block freed, up to 32 MiB: after a few big objects, objects of a few MiB come from
    the heap and stay there when freed (tuning.py: the mount kept 82 MB against 36 MB)."""
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc


def give_back() -> None:
    """Returns the allocator's free memory to the system (glibc's malloc_trim; nothing elsewhere).
    Threads allocate from arenas of their own, and big objects freed leave whole pages free in
    them: after a whole-mount walk of git.git the mount process kept ~60 MB of them."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
