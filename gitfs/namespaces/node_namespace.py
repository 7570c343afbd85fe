"""What `.refs`, `.tree` and `.log` share: nodes under one directory of the root, with dynamic inodes.

A node is a hashable value that says what an entry is (RefsDir, TreeDir, LogLink...); the same
node gets the same inode while the kernel holds a lookup of it (gitfs/view/inodes.py DynamicInodes,
numbered in the namespace's own range). A subclass says how a node looks (attr), what can be known
of it on the loop (known) and what must be read (stat, in a thread or as small work), how to list
and look up its directories.
"""

from __future__ import annotations

import contextlib
import errno

import odb

from gitfs.view.inodes import DynamicInodes, namespace_base
from gitfs.namespaces.namespace import DirectoryReplies, no_entry


class EntriesListing:
    """A directory's entries as (name, node, st_size or None), taken at opendir."""

    __slots__ = ("entries",)

    def __init__(self, entries):
        self.entries = entries


class NodeNamespace:
    """A namespace (namespace.py) of nodes below one fixed directory, `name` in the root."""

    name: bytes  # the directory's name in the root
    directories: tuple[type, ...] = ()  # the node types that are directories
    root_node: object = None  # the node the directory itself is

    def __init__(self, view, number: int):
        self.view = view
        self.root = namespace_base(number)
        self.names = {self.name: self.root}
        self.inodes = DynamicInodes(number)

    def owns(self, inode: int) -> bool:
        return inode == self.root or self.inodes.owns(inode)

    def node(self, inode: int):
        if inode == self.root:
            return self.root_node
        node = self.inodes.node_of(inode)
        if node is None:
            raise no_entry()  # forgotten by the kernel, or never handed out
        return node

    def is_directory(self, inode: int) -> bool:
        try:
            return inode == self.root or type(self.node(inode)) in self.directories
        except FileNotFoundError:
            return False

    # -- what a subclass says of its nodes ----------------------------------------------------

    def attr(self, inode: int, node, size: int = 0, access=None):
        """What the kernel is told of a node of st_size size, shown with access (odb.Access)."""
        raise NotImplementedError

    def known(self, node) -> tuple[int, object] | None:
        """(st_size, Access or None) of node without a thread, or None when it must be read."""
        return 0, None

    def stat(self, node) -> tuple[int, object]:
        """Thread: (st_size, Access or None) of node, reading what it must."""
        return 0, None

    async def stat_of(self, node) -> tuple[int, object]:
        """stat(node) as small work (MountView.small): an index lookup and an entry header."""
        return await self.view.small(self.stat, node)

    async def entry(self, node):
        """The Attr of a node about to be handed to the kernel; the caller counts it."""
        found = self.known(node) or await self.stat_of(node)
        return self.attr(self.inodes.inode_for(node), node, *found)

    async def looked_up(self, node):
        """The Attr of the node a lookup found (None: ENOENT), counted: the kernel holds it."""
        if node is None:
            raise no_entry()
        attr = await self.entry(node)
        self.inodes.remember(attr.inode)
        return attr

    def node_of_type(self, inode: int, kind: type):
        """The inode's node, which must be a kind (a directory: ENOTDIR; a link: EINVAL)."""
        node = self.node(inode)
        if type(node) is not kind:
            if kind in self.directories:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
            raise OSError(errno.EINVAL, "not a symlink")
        return node

    # -- the protocol -------------------------------------------------------------------------

    async def lookup_root(self, name: bytes):
        return self.view.dir_attr(self.root)

    async def getattr(self, inode: int):
        if inode == self.root:
            return self.view.dir_attr(inode)
        node = self.node(inode)
        found = self.known(node) or await self.stat_of(node)  # a gone ref: ENOENT
        return self.attr(inode, node, *found)

    def forget(self, inode: int, count: int) -> None:
        self.inodes.forget(inode, count)

    async def readlink(self, inode: int) -> bytes:
        self.node(inode)  # ENOENT for an inode the kernel let go
        raise OSError(errno.EINVAL, "not a symlink")

    async def readdir(self, listing, start: int, out: DirectoryReplies) -> None:
        async with contextlib.aclosing(self.entries(listing, start)) as entries:
            async for k, name, attr in entries:
                if not out.add(name, attr, k):
                    self.inodes.drop_unheld(attr.inode)  # the kernel holds nothing of it
                    return
                self.inodes.remember(attr.inode)

    async def entries(self, listing: EntriesListing, start: int):
        """(k, name, Attr) of each entry of a listing from start on."""
        for k in range(start, len(listing.entries)):
            name, node, size = listing.entries[k]
            if size is not None:
                attr = self.attr(self.inodes.inode_for(node), node, size)
            else:
                try:
                    attr = await self.entry(node)
                except (odb.OdbError, OSError):
                    continue  # gone since opendir: not listed
            yield k, name, attr

    async def read(self, inode: int, offset: int, size: int):
        if self.is_directory(inode):
            raise IsADirectoryError(errno.EISDIR, "not a file")
        raise OSError(errno.EINVAL, "not a regular file")

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        self.node(inode)  # ENOENT for an inode the kernel let go
        return {}

    async def object_of(self, inode: int) -> bytes | None:
        self.node(inode)
        return None

    def status(self) -> dict:
        return {}
