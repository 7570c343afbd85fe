"""The entries below a .tree/<rev>: inodes by place, and each entry's node made again from its tree.

An entry's inode is its directory's slot and its position in the tree (gitfs/view/inodes.py
TreeEntryInodes), so that the kernel may hold millions of them at no cost here but the parsed
trees they are in. When the kernel asks about one, its node (TreeDir, BlobFile...) is made from
the tree: the one kept while the kernel holds any entry of it, the directory's listing, or the
tree parsed again.
"""

from __future__ import annotations

import logging

import odb

from gitfs.namespaces.lfs_view import LfsFile
from gitfs.namespaces.tree_view import BlobFile, BlobLink, Gitlink, TreeDir, TreeListing, node_of
from gitfs.view.inodes import POSITION_MASK, TreeEntryInodes

log = logging.getLogger("gitfs")


class TreeEntries:
    def __init__(self, trees, listings, pinned_limit: int):
        """trees: the TreeView that parses; listings: the namespace's kept listings, by the
        directory's inode; pinned_limit: bytes of trees kept for entries the kernel holds."""
        self.trees = trees
        self.listings = listings
        self.inodes = TreeEntryInodes(pinned_limit=pinned_limit)
        self.lfs = None  # -o lfs: an LfsView (TreeNamespace.enable_lfs)

    def owns(self, inode: int) -> bool:
        return self.inodes.owns(inode)

    def position(self, inode: int) -> int:
        return self.inodes.position(inode)

    def base(self, dir_inode: int, directory: TreeDir) -> int:
        """The inode of entry 0 of the directory."""
        return self.inodes.base(dir_inode, directory)

    def held(self, listing: TreeListing, count: int) -> None:
        """The kernel took count lookups of the listing's entries (readdirplus, lookup)."""
        if count > 0:
            self.inodes.held(listing.base, count, listing.dir_inode, listing.directory, listing.tree)

    def forget(self, inode: int, count: int) -> None:
        self.inodes.forget(inode, count)

    @property
    def pinned_bytes(self) -> int:
        return self.inodes.pinned_bytes

    def __len__(self) -> int:
        return len(self.inodes)

    def node(self, inode: int):
        """The node of a tree entry's inode: from its directory's tree, held while the kernel
        holds any of its entries (or from the directory's listing), or None."""
        slot = self.inodes.slot(inode)
        if slot is None:
            return None
        tree = slot.tree
        if tree is None:
            listing = self.listing_of(inode)
            if listing is not None:
                tree = listing.tree
            elif slot.held:
                # Let go past the bound while the kernel still holds entries of it: parsed again
                # here, on the loop (the kernel seldom asks: it has their attributes already).
                try:
                    tree = self.trees.tree(slot.directory.tree)
                except (odb.OdbError, OSError) as e:
                    log.warning("tree %s: %s", slot.directory.tree.hex(), e)
                    return None
                self.inodes.pin(self.inodes.number(inode), tree)
            else:
                return None
        k = self.inodes.position(inode)
        if k >= len(tree):
            return None
        node = node_of(tree.mode_at(k), tree.name_at(k), tree.oid_at(k), slot.dir_inode, slot.directory.mtime_ns)
        if self.lfs is not None and type(node) is BlobFile:
            listing = self.listing_of(inode)
            if listing is not None and listing.lfs is not None:
                return listing.lfs.get(k, node)
            return self.lfs.file(node)  # its listing let go: the pointer is looked at again
        return node

    def listing_of(self, inode: int) -> TreeListing | None:
        """The kept listing that gave out a tree entry's inode, or None (for any other inode too)."""
        slot = self.inodes.slot(inode)
        listing = None if slot is None else self.listings.peek(slot.dir_inode)
        if listing is None or listing.base != inode & ~POSITION_MASK:
            return None
        return listing


def entry_xattrs(node, lfs) -> dict[bytes, bytes]:
    """user.git.id and user.git.mode of a tree entry (the mode as `git ls-tree` prints it),
    and a submodule's user.git.commit."""
    kind = type(node)
    if kind is Gitlink:
        commit = node.commit.hex().encode()
        return {b"user.git.commit": commit, b"user.git.id": commit, b"user.git.mode": b"160000"}
    if kind in (BlobFile, LfsFile):
        mode = b"100755" if node.executable else b"100644"
        values = {b"user.git.id": node.blob.hex().encode(), b"user.git.mode": mode}
        if lfs is not None:
            values.update(lfs.xattrs(node))
        return values
    if kind is BlobLink:
        return {b"user.git.id": node.blob.hex().encode(), b"user.git.mode": b"120000"}
    if kind is TreeDir:
        return {b"user.git.id": node.tree.hex().encode(), b"user.git.mode": b"040000"}
    return {}

