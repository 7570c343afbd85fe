"""What a namespace of the mount is: a tree beside the object buckets, found by name in the root.

`.refs`, `.tree` and `.log` are one namespace (gitfs/navigation.py: they share inodes and
parsed trees); a new one implements this protocol and is given to MountView, which composes
them: a request for an inode a namespace owns goes to that namespace, and nothing else in the
view or in the FUSE handlers changes (tests/gitfs/test_namespaces.py adds one so).

A namespace's root names are looked up in the root and listed nowhere, so `grep -r` and `find`
over the mount never enter it. Its inodes are its own: the fixed ones it was given (`base`, see
gitfs/inodes.py `namespace_base`), and any it numbers in a range no other namespace uses. Its
answers are the view's values (Attr, listings it reads itself) and the view's errors
(`no_entry()` for ENOENT, NotADirectoryError, OSError with an errno); gitfs/fuse_errors.py turns
them into errno.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .view import Attr


class Namespace(Protocol):
    names: dict[bytes, int]  # its names in the root, and the inode of each one's directory

    def owns(self, inode: int) -> bool:
        """Whether the inode is one of this namespace's (asked of every request: keep it cheap)."""

    def is_directory(self, inode: int) -> bool: ...

    async def lookup_root(self, name: bytes) -> Attr:
        """The directory one of `names` stands for."""

    async def lookup(self, parent: int, name: bytes) -> Attr: ...

    async def getattr(self, inode: int) -> Attr: ...

    def forget(self, inode: int, count: int) -> None:
        """The kernel dropped count lookups of the inode (FORGET)."""

    async def readlink(self, inode: int) -> bytes: ...

    async def open_dir(self, inode: int) -> object:
        """A snapshot of the directory, which entries() then reads (re-reading refreshes)."""

    def entries(self, listing, start: int) -> AsyncIterator[tuple[int, bytes, Attr]]:
        """(position, name, attributes) of the listing's entries from start on."""

    def sent(self, inode: int) -> None:
        """readdir handed the kernel this entry: it holds a lookup of it now."""

    def unsent(self, inode: int) -> None:
        """The entry did not fit in the kernel's buffer: it holds nothing of it."""

    async def read(self, inode: int, offset: int, size: int) -> bytes | memoryview: ...

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        """The namespace's own attributes of the inode (all of them user.*)."""

    def object_of(self, inode: int) -> bytes | None:
        """The object a file or directory shows, whose user.git.* the view adds; None: none."""

    def status(self) -> dict:
        """Its part of the root's user.gitfs.status."""
