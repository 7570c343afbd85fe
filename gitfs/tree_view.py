"""MNT/.tree/<rev>: a revision's tree as directories, files and symlinks.

<rev> is what odb.revision resolves (HEAD, a branch or tag name, a full or abbreviated id of a
commit, tag or tree; ":" stands for "/" in a ref name: .tree/heads:main). Tags peel to commits
and commits to trees; reached through a commit, every entry below carries the committer date as
its mtime. Subtrees are directories, blobs files (100755: mode 0555), symlinks (120000) symlinks
to their target, submodules (160000) empty directories whose user.git.commit names the commit.
.tree itself lists nothing, so that `find MNT` and `grep -r MNT` never walk into it.

A node says everything about what it shows, and so keeps its inode while the kernel holds it:
a directory by where it is (parent inode and name: two identical subtrees are two directories,
never one directory the kernel sees under two names), a file or link by its blob, mode and mtime.
Their bytes come from the same object cache as MNT/xx/yyyy (the page cache is not shared: the
attributes differ). Everything here runs in worker threads (it reads objects).
"""

from __future__ import annotations

import collections
import logging
import threading
from array import array
from typing import NamedTuple

import odb
from odb import revision
from odb.tree import EXECUTABLE, GITLINK, SYMLINK, TREE

from .listings import Listing

log = logging.getLogger("gitfs")

TREES_KEPT_BYTES = 16 << 20  # parsed tree objects kept, for lookups that walk down a path


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
    """A tree directory's entries, in git's order: names, nodes, and (as the helpers read them)
    sizes. One listing serves the directory's lookups and readdirs alike; inodes are given out
    as they are sent (readdir) or looked up."""

    __slots__ = ("_by_name", "first_file", "names", "nodes")

    # A reader that starts at a tree's first file walks it (cat in path order, cp -r, tar):
    # read-ahead starts there, without waiting for a second read.
    walk_from_start = True
    # Its files are mostly looked up one by one, just before they are read, so read-ahead cannot
    # push them (the kernel does not know them yet): their READs want the bytes in this process,
    # where a helper would only add a pickle and a pipe copy for each.
    loads_here = True

    def __init__(self, entries: list[tuple[bytes, object]], raw_len: int, generation: int):
        block = b"".join(_oid_of(node) for _, node in entries)
        super().__init__(block, raw_len, generation, array("Q", [0]) * len(entries))
        self.names = [name for name, _ in entries]
        self.nodes = [node for _, node in entries]
        self._by_name: dict[bytes, int] | None = None  # built at the first lookup
        self.first_file = next((k for k, node in enumerate(self.nodes) if type(node) is BlobFile), -1)

    def readable(self, k: int) -> bool:
        return type(self.nodes[k]) is BlobFile

    def position_of(self, name: bytes) -> int | None:
        """The entry called name, or None."""
        if self._by_name is None:
            # entries() left out bad names and kept the first of repeated ones: so does this.
            self._by_name = {}
            for k, entry_name in enumerate(self.names):
                self._by_name.setdefault(entry_name, k)
        return self._by_name.get(name)

    @property
    def nbytes(self) -> int:
        return len(self.block) + 200 * self.count  # nodes, names, and the index by name


def _oid_of(node) -> bytes:
    return node.tree if type(node) is TreeDir else node.commit if type(node) is Gitlink else node.blob


class TreeView:
    def __init__(self, store, refs):
        self.store = store
        self.refs = refs
        self.format = store.format
        self._trees: collections.OrderedDict[bytes, odb.Tree] = collections.OrderedDict()
        self._trees_bytes = 0
        self._lock = threading.Lock()

    def resolve(self, component: bytes, parent: int) -> TreeDir:
        """The tree a <rev> names (ObjectNotFound, NotTreeish, AmbiguousPrefix)."""
        try:
            rev = revision.decode_component(component.decode())
        except UnicodeDecodeError:
            raise odb.ObjectNotFound(repr(component)) from None
        found = revision.resolve(self.store, self.refs, rev)
        if found.also:
            log.info(".tree/%s: %s also names %s (git: refname is ambiguous)", rev, rev, ", ".join(found.also))
        mtime = found.date.seconds * 1_000_000_000 if found.date is not None else None
        return TreeDir(parent, component, found.tree, mtime)

    def tree(self, oid: bytes) -> odb.Tree:
        with self._lock:
            tree = self._trees.get(oid)
            if tree is not None:
                self._trees.move_to_end(oid)
                return tree
        kind, data = self.store.read(oid)
        if kind != "tree":
            raise odb.CorruptObject(oid.hex(), None, f"a tree entry names a {kind}", oid=oid.hex())
        tree = odb.Tree(data, self.format, oid)
        with self._lock:
            self._trees[oid] = tree
            self._trees_bytes += len(data)
            while self._trees_bytes > TREES_KEPT_BYTES and len(self._trees) > 1:
                _, old = self._trees.popitem(last=False)
                self._trees_bytes -= len(old.data)
        return tree

    def usable(self, oid: bytes) -> list[odb.tree.TreeEntry]:
        """A tree's entries in git's order, bad names left out (and logged)."""
        def skipped(name: bytes, reason: str) -> None:
            log.warning("tree %s: entry %r left out: %s", oid.hex(), name, reason)
        return list(self.tree(oid).entries(skipped))

    def entries(self, directory: TreeDir, inode: int) -> list[tuple[bytes, object]]:
        """(name, node) of each entry of the directory, in git's order; bad names left out."""
        return nodes_of(self.usable(directory.tree), directory, inode)

    def link_target(self, link: BlobLink) -> bytes:
        kind, data = self.store.read(link.blob)
        return bytes(data)


class PreparedTree(NamedTuple):
    """A tree's usable entries and their sizes, read ahead of its listing (no inode in them:
    the directory's comes when the kernel looks it up)."""

    entries: list
    sizes: array
    errors: dict
    access: array  # indexes into the view's Access values
    generation: int  # the store's, when read


def nodes_of(entries, directory: TreeDir, inode: int) -> list[tuple[bytes, object]]:
    """(name, node) of a directory's entries, the directory's inode being inode."""
    mtime = directory.mtime_ns
    return [(e.name, _node(e, inode, mtime)) for e in entries]


def _node(entry, parent: int, mtime_ns: int | None):
    if entry.mode == TREE:
        return TreeDir(parent, entry.name, entry.oid, mtime_ns)
    if entry.mode == SYMLINK:
        return BlobLink(entry.oid, mtime_ns)
    if entry.mode == GITLINK:
        return Gitlink(parent, entry.name, entry.oid, mtime_ns)
    return BlobFile(entry.oid, entry.mode == EXECUTABLE, mtime_ns)
