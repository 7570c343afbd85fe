"""The kernel's mount table (/proc/self/mountinfo): which mounts exist, where, of what type.

Everything here is read from the table, never by stat'ing the paths it names: a path on a
hung FUSE mount would block the caller, and one on a dead mount fails with ENOTCONN.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

MOUNTINFO = "/proc/self/mountinfo"
GITFS_TYPE = "fuse.gitfs"
# The kernel writes space, tab, newline and backslash in paths as octal escapes (seq_path).
_ESCAPE = re.compile(rb"\\([0-7]{3})")


class Mount(NamedTuple):
    mount_id: int
    parent_id: int
    mountpoint: str
    fstype: str
    source: str  # for gitfs: the fsname, which is the repository's path

    @property
    def is_fuse(self) -> bool:
        return self.fstype == "fuse" or self.fstype.startswith(("fuse.", "fuseblk"))


def unescape(field: bytes) -> str:
    """One mountinfo field as a path: octal escapes undone, undecodable bytes kept (os.fsdecode)."""
    return os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), field))


def parse(text: bytes) -> list[Mount]:
    """The lines of a mountinfo file, in the kernel's order (a mount after the one it covers)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(b" ")
        try:
            sep = fields.index(b"-", 6)  # optional fields (shared:N ...) end at a lone "-"
            mounts.append(Mount(int(fields[0]), int(fields[1]), unescape(fields[4]),
                                unescape(fields[sep + 1]), unescape(fields[sep + 2])))
        except (ValueError, IndexError):
            continue  # not a line of the documented shape
    return mounts


def mounts() -> list[Mount]:
    with open(MOUNTINFO, "rb") as f:
        return parse(f.read())


def gitfs_mounts() -> list[Mount]:
    return [m for m in visible(mounts()) if m.fstype == GITFS_TYPE]


def visible(table: list[Mount]) -> list[Mount]:
    """The mounts that paths reach: of several on one mount point, the last one mounted."""
    top: dict[str, Mount] = {}
    for m in table:
        top.pop(m.mountpoint, None)
        top[m.mountpoint] = m
    return list(top.values())


def lexical(path: str) -> str:
    """An absolute, normalised path, computed without touching the filesystem."""
    return os.path.normpath(os.path.join(os.getcwd(), path))


def mount_at(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount whose mount point is exactly `path` (the topmost one), or None."""
    target = lexical(path)
    found = [m for m in (mounts() if table is None else table) if m.mountpoint == target]
    return found[-1] if found else None


def mount_containing(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount that `path` lies on: the deepest mount point that is `path` or an ancestor."""
    target = lexical(path)
    best = None
    for m in visible(mounts() if table is None else table):
        if is_within(target, m.mountpoint) and (best is None or len(m.mountpoint) >= len(best.mountpoint)):
            best = m
    return best


def is_within(path: str, directory: str) -> bool:
    """path is directory or below it (both absolute and normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")
