"""MNT/.tree/<rev>: a revision's tree as directories, files and symlinks (see tree_view.py).

`.tree` itself lists nothing. A <rev> directory has a dynamic inode of this namespace; every entry
below it is numbered by place (tree_entries.py), and its node is made again from its directory's
tree when the kernel asks. A directory's listing (tree_view.py TreeListing) serves its lookups and
readdirs alike and is kept, bounded by bytes; its subtrees are read ahead (subtrees_ahead.py). A
file's bytes come through the view's object path: the same cache, loads and read-ahead as
MNT/xx/yyyy; with -o lfs, LFS content comes from the LFS object.
"""

from __future__ import annotations

import errno
import logging
import stat

from odb.lru import LRU
from odb.objects.tree import BLOB, EXECUTABLE, SYMLINK

from gitfs.engine import helper_protocol as hp
from gitfs.view.inodes import TREE_NAMESPACE
from gitfs.namespaces.lfs_view import LfsFile, LfsView
from gitfs.namespaces.namespace import DirectoryReplies, no_entry
from gitfs.namespaces.node_namespace import EntriesListing, NodeNamespace
from gitfs.namespaces.subtrees_ahead import SubtreesAhead
from gitfs.namespaces.tree_entries import TreeEntries, entry_xattrs
from gitfs.namespaces.tree_view import TREES_KEPT_BYTES, BlobFile, BlobLink, Gitlink, TreeDir, TreeListing, TreeView
from gitfs.tuning import SIZE_BATCH, TREE_LISTING_BYTES

log = logging.getLogger("gitfs")

_SIZED = (BLOB, EXECUTABLE, SYMLINK)  # tree entries whose size is their object's


class TreeNamespace(NodeNamespace):
    name = b".tree"
    directories = (TreeDir, Gitlink)

    def __init__(self, view, refs, number: int = TREE_NAMESPACE):
        super().__init__(view, number)
        limit = view.cache.max_bytes
        self.trees = TreeView(view.store, refs, min(TREES_KEPT_BYTES, limit // 16))
        self.listings: LRU[int, TreeListing] = LRU(  # by the directory's inode
            max_bytes=min(TREE_LISTING_BYTES, limit // 4), weigh=lambda listing: listing.nbytes)
        self.tree_entries = TreeEntries(self.trees, self.listings, limit // 4)  # everything below a .tree/<rev>
        self.subtrees = SubtreesAhead(self.trees, view.sizes, view.store, view.pool, limit)

    @property
    def lfs(self) -> LfsView | None:
        """-o lfs (enable_lfs): held where entries' nodes are made, which need it too."""
        return self.tree_entries.lfs

    def enable_lfs(self, common_dir: str) -> None:
        self.tree_entries.lfs = LfsView(self.view.store, common_dir)

    def owns(self, inode: int) -> bool:
        return inode == self.root or self.inodes.owns(inode) or self.tree_entries.owns(inode)

    def node(self, inode: int):
        if not self.tree_entries.owns(inode):
            return super().node(inode)
        node = self.tree_entries.node(inode)
        if node is None:
            raise no_entry()  # forgotten by the kernel, or never handed out
        return node

    # -- attributes --------------------------------------------------------------------------

    def attr(self, inode: int, node, size: int = 0, access=None):
        """Files show the Access of the file holding their blob (who may read it), executables
        with x where r is; directories the root's, kept as long as objects (a tree never
        changes)."""
        view = self.view
        if node is None:
            attr = view.dir_attr(inode)
        elif type(node) in self.directories:
            attr = view.dir_attr(inode)
            attr.timeout = view.object_timeout
        elif type(node) is BlobLink:
            attr = view.object_attr(inode, size, access)
            attr.mode = stat.S_IFLNK | 0o777
        else:
            attr = view.object_attr(inode, size, access)
            readable = attr.mode & 0o444
            attr.mode = stat.S_IFREG | readable | (readable >> 2 if node.executable else 0)
        if node is not None and node.mtime_ns is not None:
            attr.mtime_ns = node.mtime_ns
        return attr

    def known(self, node):
        return (0, None) if type(node) in self.directories else None

    def stat(self, node):
        if type(node) is LfsFile:
            return node.pointer.size, self.view.store.stat(node.blob)[1]
        return self.view.store.stat(node.blob)

    def listed_attr(self, listing: TreeListing, k: int):
        """The Attr of entry k of a tree listing whose size is in."""
        node, size = listing.node(k), listing.sizes[k]
        if type(node) is LfsFile:
            size = node.pointer.size
        attr = self.attr(listing.base | k, node, max(size, 0), self.view.accesses[listing.access[k]])
        if size < 0 and type(node) in (BlobFile, BlobLink):
            attr.timeout = 0  # its size could not be read: shown, never cached
        return attr

    async def _listed(self, listing: TreeListing, k: int):
        """The Attr of entry k about to be handed to the kernel: from the listing's sizes, or
        read on its own while they are not in (a lookup in a wide directory does not wait for
        the sizes of every entry before it)."""
        node = listing.node(k)
        if k >= listing.filled and type(node) in (BlobFile, BlobLink):
            size, access = await self.stat_of(node)
            return self.attr(listing.base | k, node, size, access)
        return self.listed_attr(listing, k)

    # -- names ---------------------------------------------------------------------------------

    async def lookup(self, parent: int, name: bytes):
        if parent == self.root:
            found = await self.view.in_thread(self.trees.resolve, name, parent)
            attr = await self.entry(found)
            attr.timeout = self.view.directory_timeout  # the revision may move: ask again soon
            self.inodes.remember(attr.inode)
            return attr
        node = self.node(parent)
        if type(node) is Gitlink:
            raise no_entry()
        if type(node) is not TreeDir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        listing = await self._listing(parent, node)
        k = listing.position_of(name)
        if k is None:
            raise no_entry()
        attr = await self._listed(listing, k)
        self.view.ahead.looked_up(listing, k)
        self._sent(listing, 1)
        return attr

    def forget(self, inode: int, count: int) -> None:
        if self.tree_entries.owns(inode):
            self.tree_entries.forget(inode, count)
            return
        self.inodes.forget(inode, count)
        if self.inodes.node_of(inode) is None:  # dropped: the inode is never given out again
            if self.listings.pop(inode) is not None:
                self.view.cache.hold("tree listings", self.listings.nbytes)

    async def readlink(self, inode: int) -> bytes:
        node = self.node(inode)
        if type(node) is not BlobLink:
            return await super().readlink(inode)
        return await self.view.in_thread(self.trees.link_target, node)

    # -- directories ---------------------------------------------------------------------------

    async def open_dir(self, inode: int):
        node = self.node(inode)
        if inode == self.root or type(node) is Gitlink:
            return EntriesListing([])
        if type(node) is not TreeDir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        return await self._listing(inode, node)

    async def _listing(self, inode: int, node: TreeDir) -> TreeListing:
        """The directory's listing: the kept one, unless a refresh has seen the repository
        change since (its files' sizes and modes are those of the objects' holding files)."""
        listing = self.listings.get(inode)
        if listing is not None and listing.generation == self.view.store.generation:
            return listing
        base = self.tree_entries.base(inode, node)
        prepared = await self.subtrees.take(node.tree) if self.lfs is None else None
        if prepared is not None:
            listing = TreeListing(prepared.tree, node, inode, base, prepared.generation)  # nothing to read
            listing.size_jobs = []  # sizes.ask has nothing left to ask
            listing.fill(0, prepared.sizes, prepared.errors, prepared.access)
        else:
            listing = await self.view.in_thread(self._list, node, inode, base)
        self.view.sizes.ask(listing, hp.SIZES)
        if self.lfs is None:  # with -o lfs a listing reads its pointers: nothing is prepared
            self.subtrees.after_listing(listing)
        self.listings.put(inode, listing)
        self.account()
        return listing

    def _list(self, node: TreeDir, inode: int, base: int) -> TreeListing:
        """Thread: a tree's listing. A small one gets its sizes here as well: the lookup that
        waits for it is spared a round trip to a helper."""
        listing = TreeListing(self.trees.tree(node.tree), node, inode, base, self.view.store.generation)
        if self.lfs is not None:
            listing.lfs = self.lfs.files(listing.tree, node.mtime_ns)
        if listing.count <= SIZE_BATCH:
            self.view.sizes.fill(listing)
        return listing

    async def readdir(self, listing, start: int, out: DirectoryReplies) -> None:
        if type(listing) is not TreeListing:
            return await super().readdir(listing, start, out)
        # The hot loop of `ls -lR .tree/<rev>`: one reply entry per kind of entry (mode and
        # Access: the mtime is the directory's) serves every entry of that kind; inodes are
        # positions, names slices of the tree's bytes.
        shaped: dict[tuple[int, int], object] = {}
        add, sizes, count, access = out.add_shaped, listing.sizes, listing.count, listing.access
        base, (data, spaces, nuls, modes) = listing.base, listing.tree.layout()
        lfs = listing.lfs  # -o lfs: these entries show their content's size, each on its own
        i = start
        try:
            while i < count:
                if i >= listing.filled:
                    await listing.wait_filled(i)
                for k in range(i, listing.filled):
                    mode, size = modes[k], sizes[k]
                    name = data[spaces[k] + 1 : nuls[k]]
                    if size < 0 and mode in _SIZED or lfs and k in lfs:
                        if not out.add(name, self.listed_attr(listing, k), k):
                            return
                    else:
                        kind = (mode, access[k])
                        entry = shaped.get(kind)
                        if entry is None:
                            entry = shaped[kind] = out.shape(self.listed_attr(listing, k))
                        if not add(name, entry, base | k, size if mode in _SIZED else 0, k):
                            return
                    i = k + 1
        finally:
            self._sent(listing, i - start)  # the kernel holds a lookup of each
            self.view.replied(listing, i)

    def _sent(self, listing: TreeListing, count: int) -> None:
        """The kernel took count lookups of the listing's entries (readdirplus, lookup)."""
        self.tree_entries.held(listing, count)

    # -- files ---------------------------------------------------------------------------------

    async def read(self, inode: int, offset: int, size: int):
        """A file's bytes: an LFS object's, or those of the blob, read (and read ahead in its
        listing) as any object is."""
        node = self.node(inode)
        if type(node) is LfsFile:
            return await self.view.in_thread(self.lfs.read, node, offset, size)
        if type(node) is not BlobFile:
            return await super().read(inode, offset, size)
        listing = self.tree_entries.listing_of(inode)
        k = -1 if listing is None else self.tree_entries.position(inode)
        return await self.view.reads.read(inode, node.blob, listing, k, offset, size)

    async def object_of(self, inode: int) -> bytes | None:
        node = self.node(inode)
        if type(node) in (BlobFile, BlobLink, LfsFile):
            return node.blob
        if type(node) is TreeDir:
            return node.tree
        return None

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        return entry_xattrs(self.node(inode), self.lfs)

    # -- memory and status -----------------------------------------------------------------------

    def account(self) -> None:
        """The loop: what this namespace holds is counted against the cache's bound."""
        for part, nbytes in self.memory().items():
            self.view.cache.hold(part, nbytes)

    def memory(self) -> dict[str, int]:
        """Bytes held besides the object cache, by part."""
        return {"tree listings": self.listings.nbytes, "trees": self.trees.nbytes,
                "trees read ahead": self.subtrees.nbytes, "trees the kernel holds": self.tree_entries.pinned_bytes}

    def status(self) -> dict:
        """How tree listings were made, and the directories whose entries have inodes."""
        self.account()
        return {"tree listings": {**self.subtrees.counts, "directories": len(self.tree_entries)}}
