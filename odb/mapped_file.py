"""Read-only memory maps of files that git may replace or delete while we read them."""

from __future__ import annotations

import errno
import mmap
import os
import stat


# Files up to this size are read into memory instead of mapped: Python's mmap keeps a
# duplicate of the descriptor for as long as the map lives (until 3.13's trackfd=False),
# so mapping every small .idx and .pack of a repository with thousands of packs would
# run out of descriptors. Big files are few, and those are mapped.
READ_WHOLE_BELOW = 1 << 20


def open_regular(path) -> int:
    """A read-only descriptor of path, which must be a regular file.

    O_NONBLOCK keeps a hostile FIFO in place of a pack, index or midx from blocking
    the open forever (it has no effect on regular files); anything but a regular file
    is refused.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    return fd


class Descriptor:
    """An open descriptor, closed when the last reference to it goes.

    A reader takes a reference before its pread, so an owner letting go meanwhile (an LRU
    eviction, a refresh dropping a deleted pack) cannot close the descriptor under it, or
    let the number be reused for another file: reads need no lock.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def __del__(self):
        try:
            os.close(self.fd)
        except (OSError, TypeError):  # TypeError: os already torn down at interpreter exit
            pass


def map_file(path) -> tuple[mmap.mmap | bytes, os.stat_result]:
    """Maps the whole file read-only (small files: reads it) and closes our descriptor.

    git replaces pack files by rename, never in place, so a mapping keeps seeing the
    bytes it was opened on. An empty file cannot be mapped, so it comes back as b""
    for the format checks to reject.
    """
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        if st.st_size < READ_WHOLE_BELOW:
            return read_all(fd, st.st_size), st
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ), st
    finally:
        os.close(fd)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a rewritten file from the one we loaded, without reading it."""
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def read_all(fd: int, size: int) -> bytes:
    parts = []
    while size > 0:
        part = os.read(fd, size)
        if not part:
            break  # the file shrank under us; the format checks see the short buffer
        parts.append(part)
        size -= len(part)
    return b"".join(parts)
