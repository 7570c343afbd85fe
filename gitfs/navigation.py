"""The namespaces beside the buckets, .refs and .tree: their inodes, entries and attributes.

Neither name is listed in the root (like ZFS's .zfs): `find MNT -type f` still counts exactly
the objects, and `grep -r MNT` reads each object once. Both are found by name. Below them every
node has a dynamic inode (gitfs/inodes.py), held while the kernel holds a lookup on it; what a
node is comes from gitfs/refs_view.py and gitfs/tree_view.py, which read refs and trees in
worker threads. The bytes of files under .tree come through the view's object path (the same
cache, loads and read-ahead as MNT/xx/yyyy).
"""

from __future__ import annotations

import collections
import errno
import stat

import odb

from . import helper_protocol as hp
from .inodes import DYNAMIC, FIRST_NAMESPACE_INODE, DynamicInodes
from .refs_view import RefLink, RefsDir, RefsView
from .tree_view import BlobFile, BlobLink, Gitlink, TreeDir, TreeListing, TreeView

REFS_INODE = FIRST_NAMESPACE_INODE
TREES_INODE = FIRST_NAMESPACE_INODE + 1
NAMES = {b".refs": REFS_INODE, b".tree": TREES_INODE}
TREE_LISTINGS_KEPT = 32  # recent tree listings, for read-ahead in a walk


class EntriesListing:
    """A namespace directory's entries as (name, node), taken at opendir."""

    __slots__ = ("entries",)

    def __init__(self, entries):
        self.entries = entries


def no_entry() -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such entry")


class Navigation:
    def __init__(self, view, refs):
        self.view = view
        self.refs = RefsView(refs, view.store.format)
        self.trees = TreeView(view.store, refs)
        self.inodes = DynamicInodes()
        self._listings: collections.OrderedDict[int, TreeListing] = collections.OrderedDict()

    @staticmethod
    def owns(inode: int) -> bool:
        return inode in (REFS_INODE, TREES_INODE) or bool(inode & DYNAMIC)

    def node(self, inode: int):
        if inode == REFS_INODE:
            return RefsDir("")
        if inode == TREES_INODE:
            return None  # .tree itself: lists nothing
        node = self.inodes.node_of(inode)
        if node is None:
            raise no_entry()  # forgotten by the kernel, or never handed out
        return node

    def is_directory(self, inode: int) -> bool:
        if inode in (REFS_INODE, TREES_INODE):
            return True
        return type(self.inodes.node_of(inode)) in (RefsDir, TreeDir, Gitlink)

    # -- attributes --------------------------------------------------------------------------

    def attr(self, inode: int, node, size: int = 0, access=None):
        """What the kernel is told of a node. Files show the Access of the file holding their
        blob (who may read it), executables with x where r is; directories the root's."""
        view = self.view
        if node is None or type(node) is RefsDir:
            attr = view.dir_attr(inode)  # refs change: short timeouts
        elif type(node) is RefLink:
            attr = view.dir_attr(inode)
            attr.mode, attr.nlink, attr.size = stat.S_IFLNK | 0o777, 1, size
        elif type(node) in (TreeDir, Gitlink):
            attr = view.dir_attr(inode)
            attr.timeout = view.object_timeout  # a tree never changes
        elif type(node) is BlobLink:
            attr = view.object_attr(inode, size, access)
            attr.mode = stat.S_IFLNK | 0o777
        else:
            attr = view.object_attr(inode, size, access)
            readable = attr.mode & 0o444
            attr.mode = stat.S_IFREG | readable | (readable >> 2 if node.executable else 0)
        mtime = getattr(node, "mtime_ns", None)
        if mtime is not None:
            attr.mtime_ns = mtime
        return attr

    def _stat(self, node) -> tuple[int, object]:
        """Thread: (st_size, odb.Access or None) for node."""
        if type(node) is RefLink:
            target = self.refs.target(node)
            if target is None:
                raise odb.ObjectNotFound(node.name)
            return len(target), None
        if type(node) in (BlobFile, BlobLink):
            return self.view.store.stat(node.blob)
        return 0, None

    async def _entry(self, node):
        """The Attr of a node about to be handed to the kernel; the caller counts it."""
        inode = self.inodes.inode_for(node)
        return self.attr(inode, node, *await self.view.in_thread(self._stat, node))

    # -- names ---------------------------------------------------------------------------------

    async def lookup_root(self, name: bytes):
        inode = NAMES[name]
        return self.view.dir_attr(inode)

    async def lookup(self, parent: int, name: bytes):
        node = self.node(parent)
        if parent == TREES_INODE:
            found = await self.view.in_thread(self.trees.resolve, name, parent)
            attr = await self._entry(found)
            attr.timeout = self.view.directory_timeout  # the revision may move: ask again soon
        elif type(node) is RefsDir:
            found = await self.view.in_thread(self.refs.lookup, node, name)
            if found is None:
                raise no_entry()
            attr = await self._entry(found)
        elif type(node) is TreeDir:
            found = await self.view.in_thread(self.trees.child, node, parent, name)
            if found is None:
                raise no_entry()
            attr = await self._entry(found)
        elif type(node) is Gitlink:
            raise no_entry()
        else:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        self.inodes.remember(attr.inode)
        return attr

    async def getattr(self, inode: int):
        node = self.node(inode)
        if inode in (REFS_INODE, TREES_INODE):
            return self.view.dir_attr(inode)
        if type(node) is RefLink and not await self.view.in_thread(self.refs.exists, node):
            raise no_entry()
        return self.attr(inode, node, *await self.view.in_thread(self._stat, node))

    def forget(self, inode: int, count: int) -> None:
        self.inodes.forget(inode, count)

    async def readlink(self, inode: int) -> bytes:
        node = self.node(inode)
        if type(node) is RefLink:
            target = await self.view.in_thread(self.refs.target, node)
            if target is None:
                raise no_entry()
            return target
        if type(node) is BlobLink:
            return await self.view.in_thread(self.trees.link_target, node)
        raise OSError(errno.EINVAL, "not a symlink")

    # -- directories ---------------------------------------------------------------------------

    async def open_dir(self, inode: int):
        node = self.node(inode)
        if inode == TREES_INODE or type(node) is Gitlink:
            return EntriesListing([])
        if type(node) is RefsDir:
            entries = await self.view.in_thread(self.refs.list, node)
            if entries is None:
                raise no_entry()
            return EntriesListing(entries)
        if type(node) is not TreeDir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        entries = await self.view.in_thread(self.trees.entries, node, inode)
        listing = TreeListing(entries, self.view.raw_len, self.view.store.generation)
        self.view.read_sizes(listing, hp.SIZES)
        self._listings[listing.uid] = listing
        while len(self._listings) > TREE_LISTINGS_KEPT:
            self._listings.popitem(last=False)
        return listing

    async def entries(self, listing, start: int):
        """(k, name, Attr) of each entry from start on; the caller counts those it sends
        (sent(inode)) and drops the others (unsent(inode))."""
        if type(listing) is EntriesListing:
            for k in range(start, len(listing.entries)):
                name, node = listing.entries[k]
                try:
                    attr = await self._entry(node)
                except (odb.OdbError, OSError):
                    continue  # gone since opendir (a ref deleted): not listed
                yield k, name, attr
            return
        k = start
        while k < listing.count:
            if k >= listing.filled:
                await listing.wait_filled(k)
            node = listing.nodes[k]
            inode = self.inodes.inode_for(node)
            size = listing.sizes[k]
            attr = self.attr(inode, node, max(size, 0), self.view.accesses[listing.access[k]])
            if size < 0 and type(node) in (BlobFile, BlobLink):
                attr.timeout = 0  # its size could not be read: shown, never cached
            listing.inodes[k] = inode
            listing.positions[inode] = k
            yield k, listing.names[k], attr
            k += 1

    def sent(self, inode: int) -> None:
        self.inodes.remember(inode)

    def unsent(self, inode: int) -> None:
        self.inodes.drop_unheld(inode)

    # -- files ---------------------------------------------------------------------------------

    def file(self, inode: int) -> tuple[bytes, TreeListing | None, int]:
        """(blob, listing, position) of a file under .tree: what the view reads and reads ahead."""
        node = self.node(inode)
        if type(node) is not BlobFile:
            raise IsADirectoryError(errno.EISDIR, "not a file") if self.is_directory(inode) else \
                OSError(errno.EINVAL, "not a regular file")
        for listing in reversed(self._listings.values()):
            k = listing.positions.get(inode)
            if k is not None:
                return node.blob, listing, k
        return node.blob, None, -1

    def object_of(self, inode: int) -> bytes | None:
        """The object behind a node, for its user.git.* attributes."""
        node = self.node(inode)
        if type(node) in (BlobFile, BlobLink):
            return node.blob
        if type(node) is TreeDir:
            return node.tree
        if type(node) is RefLink:
            return None
        return None

    def extra_xattrs(self, inode: int) -> dict[bytes, bytes]:
        node = self.node(inode)
        if type(node) is Gitlink:
            return {b"user.git.commit": node.commit.hex().encode()}
        return {}

