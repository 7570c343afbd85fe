"""What a namespace of the mount is: a tree of entries with inodes of its own, composed by the root.

The root (gitfs/view/mount_view.py MountView) composes the namespaces: the buckets and their objects
(bucket_namespace.py), whose names the root lists, and beside them `.refs`, `.tree` and
`.log` (refs_namespace.py, tree_namespace.py, log_namespace.py), found by name in the root
and listed nowhere, so that `grep -r` and `find` over the mount never enter them. A request for
an inode goes to the namespace that owns it; a new namespace implements this protocol and is
given to MountView, and nothing else in the view or in the FUSE handlers changes
(tests/gitfs/test_namespaces.py adds one so).

A namespace's inodes are its own: the fixed ones it was given (`base`, see gitfs/view/inodes.py
`namespace_base`), and any it numbers in a range no other namespace uses (`DynamicInodes` of its
number). Its answers are the view's values (Attr, listings it reads itself) and the view's errors
(`no_entry()` for ENOENT, NotADirectoryError, OSError with an errno); gitfs/fuse/fuse_errors.py turns
them into errno.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gitfs.view.mount_view import Attr


def no_entry(what: str = "") -> FileNotFoundError:
    """ENOENT for a name the view or a namespace does not have (the one error of a miss)."""
    return FileNotFoundError(errno.ENOENT, "no such entry", what)


class DirectoryReplies(Protocol):
    """Where a namespace's readdir sends entries: one READDIRPLUS reply (gitfs/fuse/operations.py).
    Entry k goes to the kernel with the offset that resumes after it."""

    def add(self, name: bytes, attr: Attr, k: int) -> bool:
        """Sends entry k; False: the reply is full and the entry was not sent."""

    def shape(self, attr: Attr) -> object:
        """A reusable reply entry with attr's attributes (a listing's hot loop makes one per
        kind of entry and sends each entry through add_shaped)."""

    def add_shaped(self, name: bytes, shaped: object, inode: int, size: int, k: int) -> bool:
        """Sends entry k as shaped, with its own inode and size; False as add()."""


class Namespace(Protocol):
    names: dict[bytes, int]  # its names in the root, and the inode of each one's directory

    def owns(self, inode: int) -> bool:
        """Whether the inode is one of this namespace's (asked of most requests: keep it a few
        comparisons)."""

    def is_directory(self, inode: int) -> bool: ...

    async def lookup_root(self, name: bytes) -> Attr:
        """The directory one of `names` stands for."""

    async def lookup(self, parent: int, name: bytes) -> Attr: ...

    async def getattr(self, inode: int) -> Attr: ...

    def forget(self, inode: int, count: int) -> None:
        """The kernel dropped count lookups of the inode (FORGET)."""

    async def readlink(self, inode: int) -> bytes: ...

    async def open_dir(self, inode: int) -> object:
        """A snapshot of the directory, which readdir() then sends (re-reading refreshes)."""

    async def readdir(self, listing, start: int, out: DirectoryReplies) -> None:
        """Sends the listing's entries from start on until out is full; each sent entry is a
        lookup the kernel holds (FORGET gives it back), an entry not sent is none."""

    async def read(self, inode: int, offset: int, size: int) -> bytes | memoryview: ...

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        """The namespace's own attributes of the inode (all of them user.*)."""

    async def object_of(self, inode: int) -> bytes | None:
        """The object a file or directory shows, whose user.git.* the view adds; None: none."""

    def status(self) -> dict:
        """Its part of the root's user.gitfs.status."""
