"""Read-only memory maps of files that git may replace or delete while we read them."""

from __future__ import annotations

import mmap
import os


def map_file(path) -> tuple[mmap.mmap | bytes, os.stat_result]:
    """Maps the whole file read-only and closes the descriptor at once.

    The mapping outlives the descriptor, so thousands of packs cost no file
    descriptors; git replaces pack files by rename, never in place, so a mapping
    keeps seeing the bytes it was opened on. An empty file cannot be mapped, so it
    comes back as b"" for the format checks to reject.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if st.st_size == 0:
            return b"", st
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ), st
    finally:
        os.close(fd)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a rewritten file from the one we loaded, without reading it."""
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
