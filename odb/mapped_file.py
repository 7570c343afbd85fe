"""Opening repository files safely (regular files only, never blocking, metadata read with a byte limit) and mapping them."""

from __future__ import annotations

import errno
import mmap
import os
import stat

from .errors import FileTooLarge
from .refused_paths import open_nofollow
from .tuning import READ_WHOLE_BELOW


OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def open_regular(path) -> int:
    """A read-only descriptor of path, which must be a regular file.

    O_NONBLOCK keeps a hostile FIFO in place of a repository file from blocking the open
    forever (it has no effect on regular files); anything but a regular file is refused.
    A symlink into a refused directory (the mount itself) is never followed.
    """
    return open_stat(path)[0]


def open_stat(path) -> tuple[int, os.stat_result]:
    """open_regular(path) and the file's fstat, which the regular-file check needs anyway."""
    fd = open_nofollow(path, OPEN_FLAGS)
    return fd, check_regular(fd, path)


def check_regular(fd: int, path) -> os.stat_result:
    """fstat(fd), closing fd and raising OSError(EINVAL) unless it is a regular file."""
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", os.fsdecode(path))
    return st


def read_bounded(path, limit: int) -> bytes:
    """The whole of a small metadata file, or FileTooLarge if it holds more than limit bytes.

    git reads its metadata files whole, so a hostile repository can make any of them huge (a
    sparse file costs nothing to make). The size is checked before anything is read, and at
    most limit + 1 bytes are read whatever the size says (some files lie about it), so time and
    memory stay bounded by the limit.
    """
    fd, st = open_stat(path)
    try:
        if st.st_size > limit:
            raise FileTooLarge(path, limit)
        parts, have = [], 0
        want = st.st_size + 1  # one read when the size is true; the +1 sees a file that grew
        while have <= limit:
            part = os.read(fd, min(want, limit + 1 - have))
            if not part:
                break
            parts.append(part)
            have += len(part)
            want = 1 << 16
    finally:
        os.close(fd)
    if have > limit:
        raise FileTooLarge(path, limit)
    return b"".join(parts)


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
