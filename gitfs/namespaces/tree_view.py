"""MNT/.tree/<rev>: a revision's tree as directories, files and symlinks.

<rev> is what odb.revision resolves (HEAD, a branch or tag name, a full or abbreviated id of a
commit, tag or tree; ":" stands for "/" in a ref name: .tree/heads:main). Tags peel to commits
and commits to trees; reached through a commit, every entry below carries the committer date as
its mtime. Subtrees are directories, blobs files (100755: mode 0555), symlinks (120000) symlinks
to their target, submodules (160000) empty directories whose user.git.commit names the commit.
.tree itself lists nothing, so that `find MNT` and `grep -r MNT` never walk into it.

An entry's inode is its place: its directory's slot and its position in the tree (gitfs/view/inodes.py
TreeEntryInodes), so that the kernel may hold millions of them at no cost here but the parsed
trees they are in; two identical subtrees are two directories, never one directory the kernel
sees under two names. A node (TreeDir, BlobFile...) is made from the tree when asked for. Their
bytes come from the same object cache as MNT/xx/yyyy (the page cache is not shared: the
attributes differ). Reading and parsing trees runs in worker threads.
"""

from __future__ import annotations

import logging
import threading
from array import array
from typing import NamedTuple

import odb
from odb import revision
from odb.lru import LRU
from odb.objects.tree import BLOB, EXECUTABLE, GITLINK, SYMLINK, TREE

from gitfs.view.inodes import EntryInodes
from gitfs.view.listings import Listing
from gitfs.tuning import TREES_KEPT_BYTES

log = logging.getLogger("gitfs")


class TreeDir(NamedTuple):
    parent: int  # the inode of the directory it is in (.tree itself for a <rev>)
    name: bytes
    tree: bytes
    mtime_ns: int | None  # the committer date, when reached through a commit


class BlobFile(NamedTuple):
    blob: bytes
    executable: bool
    mtime_ns: int | None


class BlobLink(NamedTuple):
    blob: bytes
    mtime_ns: int | None


class Gitlink(NamedTuple):
    parent: int
    name: bytes
    commit: bytes
    mtime_ns: int | None


class TreeListing(Listing):
    """A tree directory's entries, in git's order: the parsed tree (its bytes and a compact index:
    no object per entry), and (as the helpers read them) sizes. One listing serves the
    directory's lookups and readdirs alike. Entry k's inode is base | k (gitfs/view/inodes.py
    TreeEntryInodes), and its node is made when asked for."""

    __slots__ = ("tree", "directory", "dir_inode", "base", "first_file", "lfs")

    # A reader that starts at a tree's first file walks it (cat in path order, cp -r, tar):
    # read-ahead starts there, without waiting for a second read.
    walk_from_start = True
    # Its files are mostly looked up one by one, just before they are read, so read-ahead cannot
    # push them (the kernel does not know them yet): their READs want the bytes in this process,
    # where a helper would only add a pickle and a pipe copy for each.
    loads_here = True

    def __init__(self, tree: odb.Tree, directory: TreeDir, dir_inode: int, base: int, generation: int):
        super().__init__(b"", tree.raw_len, generation, EntryInodes(base), count=len(tree))
        self.tree = tree
        self.directory = directory
        self.dir_inode = dir_inode
        self.base = base
        modes = tree.modes()
        self.first_file = next((k for k, mode in enumerate(modes) if mode in _REGULAR), -1)
        self.lfs: dict | None = None  # -o lfs: entries that show LFS content (lfs_view.py LfsFile), by position

    def oid(self, k: int) -> bytes:
        return self.tree.oid_at(k)

    def ids(self, start: int, stop: int) -> bytes:
        return self.tree.ids(start, stop)

    def name(self, k: int) -> bytes:
        return self.tree.name_at(k)

    def node(self, k: int):
        """Entry k as a node (TreeDir, BlobFile, BlobLink, Gitlink; LfsFile with -o lfs)."""
        if self.lfs is not None:
            found = self.lfs.get(k)
            if found is not None:
                return found
        tree = self.tree
        return node_of(tree.mode_at(k), tree.name_at(k), tree.oid_at(k), self.dir_inode, self.directory.mtime_ns)

    def readable(self, k: int) -> bool:
        # An LFS file's bytes are not its blob's: read-ahead must not push the pointer.
        return self.tree.mode_at(k) in _REGULAR and (self.lfs is None or k not in self.lfs)

    def position_of(self, name: bytes) -> int | None:
        """The entry called name, or None."""
        return self.tree.position(name)

    @property
    def nbytes(self) -> int:
        return self.tree.nbytes + 10 * self.count + 400  # the tree, sizes and Access indexes


_REGULAR = (BLOB, EXECUTABLE)


class TreeView:
    def __init__(self, store, refs, kept_bytes: int = TREES_KEPT_BYTES):
        self.store = store
        self.refs = refs
        self.format = store.format
        self._trees: LRU[bytes, odb.Tree] = LRU(max_bytes=kept_bytes, weigh=lambda tree: tree.nbytes)
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._trees.nbytes

    def resolve(self, component: bytes, parent: int) -> TreeDir:
        """The tree a <rev> names (ObjectNotFound, NotTreeish, AmbiguousPrefix)."""
        rev = revision.decode_component(component)
        found = revision.resolve(self.store, self.refs, rev)
        if found.also:
            log.info(".tree/%s: %s also names %s (git: refname is ambiguous)", rev, rev, ", ".join(found.also))
        mtime = found.date.seconds * 1_000_000_000 if found.date is not None else None
        return TreeDir(parent, component, found.tree, mtime)

    def tree(self, oid: bytes) -> odb.Tree:
        """Thread: the tree, parsed and indexed (bad names left out, and logged once)."""
        with self._lock:
            tree = self._trees.get(oid)
        if tree is not None:
            return tree
        kind, data = self.store.read(oid)
        if kind != "tree":
            raise odb.CorruptObject(oid.hex(), None, f"a tree entry names a {kind}", oid=oid.hex())
        tree = odb.Tree(data, self.format, oid)

        def skipped(name: bytes, reason: str) -> None:
            log.warning("tree %s: entry %r left out: %s", oid.hex(), name, reason)
        tree.index(skipped)
        with self._lock:
            self._trees.put(oid, tree)
        return tree

    def link_target(self, link: BlobLink) -> bytes:
        kind, data = self.store.read(link.blob)
        return bytes(data)


class PreparedTree(NamedTuple):
    """A tree and its entries' sizes, read ahead of its listing (no inode in them: the
    directory's comes when the kernel looks it up)."""

    tree: odb.Tree
    sizes: array
    errors: dict
    access: array  # indexes into the view's Access values
    generation: int  # the store's, when read

    @property
    def nbytes(self) -> int:
        return self.tree.nbytes + 10 * len(self.sizes)


def node_of(mode: int, name: bytes, oid: bytes, parent: int, mtime_ns: int | None):
    """The node of a tree entry, the directory holding it being inode parent."""
    if mode == TREE:
        return TreeDir(parent, name, oid, mtime_ns)
    if mode == SYMLINK:
        return BlobLink(oid, mtime_ns)
    if mode == GITLINK:
        return Gitlink(parent, name, oid, mtime_ns)
    return BlobFile(oid, mode == EXECUTABLE, mtime_ns)
