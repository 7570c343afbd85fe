"""Reflogs of the files backend (logs/<refname>): what `<ref>@{n}`, `<ref>@{date}` and `@{-n}` read.

    entries = read_reflog(refs, "refs/heads/main")   # oldest first; None: no reflog
    entries[-1].new, entries[-1].seconds, entries[-1].message

Each line is "<old> <new> <name> <<email>> <seconds> <zone>\\t<message>" (refs/files-backend.c
show_one_reflog_ent). A line git could not read is skipped, as git skips it. reftable keeps its
logs in log blocks, which odb/refs/reftable.py does not read: such a repository has no reflog here.
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple

from ..mapped_file import open_stat
from .names import check_refname, parse_worktree_ref

# git reads a reflog backwards in 1 KiB blocks and has no limit; a reflog bigger than this
# (a million entries or so) is refused rather than held in memory.
MAX_REFLOG = 128 << 20


class ReflogTooLarge(OSError):
    def __init__(self, path: str):
        super().__init__(errno.EFBIG, f"reflog larger than {MAX_REFLOG} bytes", path)


class ReflogEntry(NamedTuple):
    old: bytes  # raw ids; all zeros for "created"/"deleted"
    new: bytes
    seconds: int
    offset_minutes: int
    message: str


def reflog_path(refs, name: str) -> str | None:
    """Where the files backend keeps name's reflog (files_reflog_path); None for reftable."""
    if refs.storage != "files":
        return None
    where = parse_worktree_ref(name)
    if where.kind == "current":
        return os.path.join(refs.git_dir, "logs", name)
    if where.kind == "other":
        return os.path.join(refs.common_dir, "worktrees", where.worktree, "logs", where.bare)
    return os.path.join(refs.common_dir, "logs", where.bare)


def reflog_exists(refs, name: str) -> bool:
    if not check_refname(name):
        return False
    path = reflog_path(refs, name)
    if path is None:
        return False
    try:
        fd, _ = open_stat(path)  # a regular file, never a symlink into the mount
    except OSError:
        return False
    os.close(fd)
    return True


def read_reflog(refs, name: str) -> list[ReflogEntry] | None:
    """name's reflog, oldest entry first; None when it has none (or the name is not a ref name)."""
    if not check_refname(name):
        return None
    path = reflog_path(refs, name)
    if path is None:
        return None
    try:
        fd, st = open_stat(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL):
            return None  # no reflog (a directory there is not one either)
        raise
    try:
        if st.st_size > MAX_REFLOG:
            raise ReflogTooLarge(path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    hex_len = refs.format.hex_len
    return [e for e in (parse_line(line, hex_len) for line in b"".join(chunks).split(b"\n")) if e is not None]


def parse_line(line: bytes, hex_len: int) -> ReflogEntry | None:
    """One reflog line, or None where git's show_one_reflog_ent gives up on it."""
    if len(line) < 2 * hex_len + 2 or line[hex_len] != 0x20 or line[2 * hex_len + 1] != 0x20:
        return None
    try:
        old = bytes.fromhex(line[:hex_len].decode("ascii"))
        new = bytes.fromhex(line[hex_len + 1:2 * hex_len + 1].decode("ascii"))
    except ValueError:
        return None
    rest = line[2 * hex_len + 2:]
    email_end = rest.find(b">")
    if email_end < 0 or rest[email_end + 1:email_end + 2] != b" ":
        return None
    stamp, _, tail = rest[email_end + 2:].partition(b" ")
    zone, _, message = tail.partition(b"\t")
    if not stamp.isdigit() or len(stamp) > 20:  # git's timestamp_t is 64 bits
        return None
    try:
        hhmm = int(zone) if len(zone) <= 5 else 0
    except ValueError:
        hhmm = 0
    offset = (abs(hhmm) // 100) * 60 + abs(hhmm) % 100
    return ReflogEntry(old, new, int(stamp), -offset if hhmm < 0 else offset,
                       message.decode("utf-8", "replace"))
