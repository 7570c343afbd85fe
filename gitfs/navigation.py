"""The namespaces beside the buckets, .refs, .tree and .log: their inodes, entries and attributes.

No such name is listed in the root (like ZFS's .zfs): `find MNT -type f` still counts exactly
the objects, and `grep -r MNT` reads each object once. Each is found by name. Below them every
node has a dynamic inode (gitfs/inodes.py), held while the kernel holds a lookup on it; what a
node is comes from gitfs/refs_view.py, gitfs/tree_view.py and gitfs/log_view.py (with
gitfs/lfs_view.py for -o lfs), which read refs, trees and commits in worker threads. The bytes
of files under .tree come through the view's object path (the same cache, loads and read-ahead
as MNT/xx/yyyy); those of LFS content from the LFS object, checked first.
"""

from __future__ import annotations

import collections
import errno
import logging
import stat
import threading

import trio

import odb
from odb.lru import LRU
from odb.objects.tree import TREE

from . import helper_protocol as hp, loop
from .inodes import DYNAMIC, FIRST_NAMESPACE_INODE, POSITION_MASK, DynamicInodes, TreeEntryInodes
from .lfs_view import LfsFile, LfsView
from .listings import SIZE_BATCH
from .log_view import LogDir, LogLink, LogListing, LogView, chunk_after, entry_name, link_target
from .refs_view import RefLink, RefsDir, RefsView
from .tree_view import (
    TREES_KEPT_BYTES,
    BlobFile,
    BlobLink,
    Gitlink,
    PreparedTree,
    TreeDir,
    TreeListing,
    TreeView,
    node_of,
)
from .tuning import (
    TREE_LISTING_BYTES,
    PREPARE_AHEAD,
    PREPARE_TREES,
    PREPARED_KEPT,
    PREPARED_BYTES,
    PREPARED_WAIT,
    PREPARED_ENTRIES,
)
from .workers import Job

log = logging.getLogger("gitfs")

REFS_INODE = FIRST_NAMESPACE_INODE
TREES_INODE = FIRST_NAMESPACE_INODE + 1
LOGS_INODE = FIRST_NAMESPACE_INODE + 2
NAMES = {b".refs": REFS_INODE, b".tree": TREES_INODE, b".log": LOGS_INODE}
LISTS_NOTHING = (TREES_INODE, LOGS_INODE)


class EntriesListing:
    """A namespace directory's entries as (name, node, st_size or None), taken at opendir."""

    __slots__ = ("entries",)

    def __init__(self, entries):
        self.entries = entries


def no_entry(what: str = "") -> FileNotFoundError:
    """ENOENT for a name the view or a namespace does not have (the one error of a miss)."""
    return FileNotFoundError(errno.ENOENT, "no such entry", what)


class Navigation:
    """The .refs, .tree and .log namespaces (gitfs/namespace.py): one namespace, since .tree and
    .log share their inodes (DynamicInodes, TreeEntryInodes) and .tree's parsed trees."""

    names = NAMES

    def __init__(self, view, refs):
        self.view = view
        self.refs = RefsView(refs, view.store.format, view.directory_timeout)
        limit = view.cache.max_bytes
        self.trees = TreeView(view.store, refs, min(TREES_KEPT_BYTES, limit // 16))
        self.logs = LogView(view.store, refs)
        self.lfs: LfsView | None = None  # -o lfs: enable_lfs()
        self.inodes = DynamicInodes()  # .refs and .log nodes, .tree/<rev> directories
        self.entry_inodes = TreeEntryInodes(pinned_limit=limit // 4)  # everything below a .tree/<rev>
        self._tree_listings: LRU[int, TreeListing] = LRU(  # by inode
            max_bytes=min(TREE_LISTING_BYTES, limit // 4), weigh=lambda listing: listing.nbytes)
        self._prepared: LRU[bytes, PreparedTree | None] = LRU(  # None: being read
            max_items=PREPARED_KEPT, max_bytes=min(PREPARED_BYTES, limit // 16),
            weigh=lambda prepared: 0 if prepared is None else prepared.nbytes)
        self._prepared_lock = threading.Lock()
        self._prepared_waits: dict[bytes, trio.Event] = {}  # the loop's only
        self.counts = collections.Counter()  # tree listings: read ahead, waited for, read on their own
        self._token: trio.lowlevel.TrioToken | None = None

    def enable_lfs(self, common_dir: str) -> None:
        self.lfs = LfsView(self.view.store, common_dir)

    @staticmethod
    def owns(inode: int) -> bool:
        return inode in (REFS_INODE, TREES_INODE, LOGS_INODE) or bool(inode & DYNAMIC)

    def node(self, inode: int):
        if inode == REFS_INODE:
            return RefsDir("")
        if inode in LISTS_NOTHING:
            return None  # .tree and .log themselves: list nothing
        node = self._entry_node(inode) if self.entry_inodes.owns(inode) else self.inodes.node_of(inode)
        if node is None:
            raise no_entry()  # forgotten by the kernel, or never handed out
        return node

    def _entry_node(self, inode: int):
        """The node of a tree entry's inode: from its directory's tree, held while the kernel
        holds any of its entries (or from the directory's listing), or None."""
        slot = self.entry_inodes.slot(inode)
        if slot is None:
            return None
        tree = slot.tree
        if tree is None:
            listing = self._slot_listing(inode)
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
                self.entry_inodes.pin(self.entry_inodes.number(inode), tree)
            else:
                return None
        k = self.entry_inodes.position(inode)
        if k >= len(tree):
            return None
        node = node_of(tree.mode_at(k), tree.name_at(k), tree.oid_at(k), slot.dir_inode, slot.directory.mtime_ns)
        if self.lfs is not None and type(node) is BlobFile:
            listing = self._slot_listing(inode)
            if listing is not None and listing.lfs is not None:
                return listing.lfs.get(k, node)
            return self.lfs.file(node)  # its listing let go: the pointer is looked at again
        return node

    def _slot_listing(self, inode: int) -> TreeListing | None:
        """The kept listing that gave out a tree entry's inode, or None."""
        slot = self.entry_inodes.slot(inode)
        listing = None if slot is None else self._tree_listings.peek(slot.dir_inode)
        if listing is None or listing.base != inode & ~POSITION_MASK:
            return None
        return listing

    def is_directory(self, inode: int) -> bool:
        if inode in (REFS_INODE, TREES_INODE, LOGS_INODE):
            return True
        try:
            return type(self.node(inode)) in (RefsDir, TreeDir, Gitlink, LogDir)
        except FileNotFoundError:
            return False

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
        elif type(node) in (TreeDir, Gitlink, LogDir):
            attr = view.dir_attr(inode)
            attr.timeout = view.object_timeout  # a tree (a history) never changes
        elif type(node) is LogLink:
            attr = view.object_attr(inode, size)
            attr.mode, attr.nlink = stat.S_IFLNK | 0o777, 1
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

    async def _stat_of(self, node) -> tuple[int, object]:
        """_stat(node): in a thread for a ref, which may read files; for an object, as small
        work (MountView.small), an index lookup and a header."""
        if type(node) is RefLink:
            return await self._stat_of(node)
        return await self.view.small(self._stat, node)

    def _stat(self, node) -> tuple[int, object]:
        """(st_size, odb.Access or None) for node."""
        if type(node) is RefLink:
            # A young table answers on the loop (_known); this reads the ref.
            target = self.refs.target(node)
            if target is None:
                raise odb.ObjectNotFound(node.name)
            return len(target), None
        if type(node) in (BlobFile, BlobLink):
            return self.view.store.stat(node.blob)
        if type(node) is LogLink:
            return len(link_target(node.commit)), None
        if type(node) is LfsFile:
            return node.pointer.size, self.view.store.stat(node.blob)[1]
        return 0, None

    def _known(self, node) -> tuple[int, object] | None:
        """(st_size, Access) of node without a thread, when no object or ref must be read."""
        if type(node) in (TreeDir, Gitlink, RefsDir, LogDir):
            return 0, None
        if type(node) is LogLink:
            return len(link_target(node.commit)), None
        if type(node) is RefLink:
            target = self.refs.known_target(node)
            if target is not None:
                return len(target), None
        return None

    async def _entry(self, node):
        """The Attr of a node about to be handed to the kernel; the caller counts it."""
        found = self._known(node) or await self._stat_of(node)
        return self.attr(self.inodes.inode_for(node), node, *found)

    async def _listed(self, listing: TreeListing, k: int):
        """The Attr of entry k of a tree listing about to be handed to the kernel: from the
        listing's sizes, or read on its own while they are not in (a lookup in a wide directory
        does not wait for the sizes of every entry before it)."""
        node = listing.node(k)
        if k >= listing.filled and type(node) in (BlobFile, BlobLink):
            size, access = await self._stat_of(node)
            return self.attr(listing.base | k, node, size, access)
        return self.listed_attr(listing, k)

    def listed_attr(self, listing: TreeListing, k: int):
        """The Attr of entry k of a tree listing whose size is in."""
        node, size = listing.node(k), listing.sizes[k]
        if type(node) is LfsFile:
            size = node.pointer.size
        attr = self.attr(listing.base | k, node, max(size, 0), self.view.accesses[listing.access[k]])
        if size < 0 and type(node) in (BlobFile, BlobLink):
            attr.timeout = 0  # its size could not be read: shown, never cached
        return attr

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
        elif parent == LOGS_INODE:
            found = await self.view.in_thread(self.logs.resolve, name)
            attr = await self._entry(found)
            attr.timeout = self.view.directory_timeout
        elif type(node) is LogDir:
            found = await self.view.in_thread(self.logs.lookup, node, name)
            if found is None:
                raise no_entry()
            attr = await self._entry(found)
        elif type(node) is RefsDir:
            # A dict hit in the latest table; a miss (or no table yet) reads the refs again.
            marker, table = self.refs.marker(), self.refs.current()
            found = self.refs.find(table, node, name) if table is not None else None
            if found is None:
                found = await self.view.in_thread(self.refs.lookup, node, name, marker)
            if found is None:
                raise no_entry()
            attr = await self._entry(found)
        elif type(node) is TreeDir:
            listing = await self._tree_listing(parent, node)
            k = listing.position_of(name)
            if k is None:
                raise no_entry()
            attr = await self._listed(listing, k)
            self.view.ahead.looked_up(listing, k)
            self.sent_entries(listing, 1)
            return attr
        elif type(node) is Gitlink:
            raise no_entry()
        else:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        self.inodes.remember(attr.inode)
        return attr

    async def getattr(self, inode: int):
        node = self.node(inode)
        if inode in (REFS_INODE, TREES_INODE, LOGS_INODE):
            return self.view.dir_attr(inode)
        found = self._known(node) or await self._stat_of(node)  # a gone ref: ENOENT
        return self.attr(inode, node, *found)

    def forget(self, inode: int, count: int) -> None:
        if self.entry_inodes.owns(inode):
            self.entry_inodes.forget(inode, count)
            return
        self.inodes.forget(inode, count)
        if self.inodes.node_of(inode) is None:  # dropped: the inode is never given out again
            if self._tree_listings.pop(inode) is not None:
                self.view.cache.hold("tree listings", self._tree_listings.nbytes)

    async def readlink(self, inode: int) -> bytes:
        node = self.node(inode)
        if type(node) is RefLink:
            target = self.refs.known_target(node) or await self.view.in_thread(self.refs.target, node)
            if target is None:
                raise no_entry()
            return target
        if type(node) is BlobLink:
            return await self.view.in_thread(self.trees.link_target, node)
        if type(node) is LogLink:
            return link_target(node.commit)
        raise OSError(errno.EINVAL, "not a symlink")

    # -- directories ---------------------------------------------------------------------------

    async def open_dir(self, inode: int):
        node = self.node(inode)
        if inode in LISTS_NOTHING or type(node) is Gitlink:
            return EntriesListing([])
        if type(node) is LogDir:
            return LogListing(self.logs.walk(node.commit))
        if type(node) is RefsDir:
            entries = await self.view.in_thread(self.refs.list, node)
            self.account()
            if entries is None:
                raise no_entry()
            return EntriesListing(entries)
        if type(node) is not TreeDir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        return await self._tree_listing(inode, node)

    async def _tree_listing(self, inode: int, node: TreeDir) -> TreeListing:
        """The directory's listing: the kept one, unless a refresh has seen the repository
        change since (its files' sizes and modes are those of the objects' holding files)."""
        listing = self._tree_listings.get(inode)
        if listing is not None and listing.generation == self.view.store.generation:
            return listing
        base = self.entry_inodes.base(inode, node)
        with self._prepared_lock:
            being_read = node.tree in self._prepared and self._prepared.peek(node.tree) is None
        if being_read:
            self.counts["waited for"] += 1
            event = self._prepared_waits.setdefault(node.tree, trio.Event())
            with trio.move_on_after(PREPARED_WAIT):
                await event.wait()
        with self._prepared_lock:
            prepared = self._prepared.pop(node.tree)
        if prepared is not None and prepared.generation == self.view.store.generation and self.lfs is None:
            self.counts["read ahead"] += 1
            listing = TreeListing(prepared.tree, node, inode, base, prepared.generation)  # nothing to read
            listing.size_jobs = []  # sizes.ask has nothing left to ask
            listing.fill(0, prepared.sizes, prepared.errors, prepared.access)
        else:
            self.counts["read on their own"] += 1
            listing = await self.view.in_thread(self._list_tree, node, inode, base)
        self.view.sizes.ask(listing, hp.SIZES)
        if self.lfs is None:  # with -o lfs a listing reads its pointers: nothing is prepared
            self._prepare_subtrees(listing)
        self._tree_listings.put(inode, listing)
        self.account()
        return listing

    def _prepare_subtrees(self, listing: TreeListing) -> None:
        """The loop: the subtrees of a directory just listed are read ahead (see PREPARE_AHEAD)."""
        wanted = self._claim_subtrees(listing.tree, PREPARE_AHEAD)
        if wanted:
            self._token = loop.token()
            self.view.pool.submit(Job(hp.AHEAD, local=lambda: self._prepare(wanted)))

    def _prepare(self, trees: list[bytes]) -> None:
        """Worker thread: PreparedTree of each tree, then of their subtrees, breadth first, up to
        PREPARE_TREES in all (a damaged one is left to its listing, which reports it)."""
        queue = collections.deque(trees)
        budget = PREPARE_TREES - len(trees)
        while queue:
            oid = queue.popleft()
            prepared = None
            try:
                generation = self.view.store.generation
                tree = self.trees.tree(oid)
                if len(tree) <= PREPARED_ENTRIES:
                    prepared = PreparedTree(tree, *self.view.sizes.of(tree.ids(0, len(tree))), generation)
            except (odb.OdbError, OSError) as e:
                log.debug("tree %s not read ahead: %s", oid.hex(), e)
            if prepared is not None and budget > 0:
                more = self._claim_subtrees(prepared.tree, budget)
                queue.extend(more)
                budget -= len(more)
            self._prepared_one(oid, prepared)

    def _claim_subtrees(self, tree, limit: int) -> list[bytes]:
        """Subtrees of tree that nothing reads ahead yet, at most limit, marked as being read
        (from the loop for a directory just listed, from a worker for their subtrees)."""
        modes, k, claimed = tree.modes(), -1, []
        with self._prepared_lock:
            while len(claimed) < limit:
                try:
                    k = modes.index(TREE, k + 1)
                except ValueError:
                    break
                oid = tree.oid_at(k)
                if oid not in self._prepared:
                    self._prepared.put(oid, None)
                    claimed.append(oid)
        return claimed

    def _prepared_one(self, oid: bytes, prepared: PreparedTree | None) -> None:
        """Worker thread: a tree read ahead is in (or failed); a listing waiting for it goes on."""
        with self._prepared_lock:
            if prepared is None:
                self._prepared.pop(oid, None)
            elif oid in self._prepared:  # not taken by a listing meanwhile
                self._prepared.put(oid, prepared)
        if oid in self._prepared_waits:  # a listing waits (a late one waits PREPARED_WAIT at most)
            loop.call_soon(self._token, self._prepared_ready, oid)

    def _prepared_ready(self, oid: bytes) -> None:
        event = self._prepared_waits.pop(oid, None)
        if event is not None:
            event.set()

    def _list_tree(self, node: TreeDir, inode: int, base: int) -> TreeListing:
        """Thread: a tree's listing. A small one gets its sizes here as well: the lookup that
        waits for it is spared a round trip to a helper."""
        listing = TreeListing(self.trees.tree(node.tree), node, inode, base, self.view.store.generation)
        if self.lfs is not None:
            listing.lfs = self.lfs.files(listing.tree, node.mtime_ns)
        if listing.count <= SIZE_BATCH:
            self.view.sizes.fill(listing)
        return listing

    async def entries(self, listing, start: int):
        """(k, name, Attr) of each entry of a namespace directory (not a tree's: the FUSE layer
        sends those straight from the TreeListing, then calls sent_entries) from start on; the
        caller counts those it sends (sent(inode)) and drops the others (unsent(inode))."""
        if type(listing) is LogListing:
            async for entry in self._log_entries(listing, start):
                yield entry
            return
        for k in range(start, len(listing.entries)):
            name, node, size = listing.entries[k]
            if size is not None:
                attr = self.attr(self.inodes.inode_for(node), node, size)
            else:
                try:
                    attr = await self._entry(node)
                except (odb.OdbError, OSError):
                    continue  # gone since opendir: not listed
            yield k, name, attr

    async def _log_entries(self, listing: LogListing, start: int):
        """Entries of a history as far as it is walked, after walking one more chunk (in a
        thread) if readdir is at its end. One chunk per request, and a reply shorter than the
        kernel's buffer: the kernel hands what it got to getdents and asks again, so the first
        entries are out after FIRST_CHUNK commits, however long the history (an empty reply is
        the end)."""
        walk, k = listing.walk, start
        if k >= len(walk) and not walk.done:
            await self.view.in_thread(walk.extend, k + chunk_after(k))
        stop = len(walk)
        while k < stop:
            oid = walk.oid(k)
            node = LogLink(oid, walk.seconds[k] * 1_000_000_000)
            yield k, entry_name(k, oid), self.attr(self.inodes.inode_for(node), node, len(link_target(oid)))
            k += 1

    def sent(self, inode: int) -> None:
        self.inodes.remember(inode)

    def unsent(self, inode: int) -> None:
        self.inodes.drop_unheld(inode)

    def sent_entries(self, listing: TreeListing, count: int) -> None:
        """The kernel took count lookups of the listing's entries (readdirplus, lookup)."""
        if count <= 0:
            return
        self.entry_inodes.held(listing.base, count, listing.dir_inode, listing.directory, listing.tree)

    def account(self) -> None:
        """The loop: what navigation holds is counted against the cache's bound."""
        for part, nbytes in self.memory().items():
            self.view.cache.hold(part, nbytes)

    def memory(self) -> dict[str, int]:
        """Bytes held besides the object cache, by part (each counted in the cache's bound)."""
        with self._prepared_lock:
            prepared = self._prepared.nbytes
        return {"tree listings": self._tree_listings.nbytes, "trees": self.trees.nbytes,
                "trees read ahead": prepared, "trees the kernel holds": self.entry_inodes.pinned_bytes,
                "refs": self.refs.nbytes}

    def status(self) -> dict:
        self.account()
        return {"refs": self.refs_status(), "tree listings": self.tree_status()}

    def refs_status(self) -> dict[str, int]:
        return {"reads": self.refs.reads, "unchanged": self.refs.checks, "refs": len(self.refs.current() or ())}

    def tree_status(self) -> dict[str, int]:
        """How tree listings were made, and the directories whose entries have inodes."""
        return {**self.counts, "directories": len(self.entry_inodes)}

    # -- files ---------------------------------------------------------------------------------

    def file(self, inode: int) -> tuple[bytes, TreeListing | None, int]:
        """(blob, listing, position) of a file under .tree: what the view reads and reads ahead."""
        node = self.node(inode)
        if type(node) is not BlobFile:
            raise IsADirectoryError(errno.EISDIR, "not a file") if self.is_directory(inode) else \
                OSError(errno.EINVAL, "not a regular file")
        listing = self._slot_listing(inode) if self.entry_inodes.owns(inode) else None
        return node.blob, listing, -1 if listing is None else self.entry_inodes.position(inode)

    async def read(self, inode: int, offset: int, size: int):
        """A file's bytes: an LFS object's, or those of the blob, read (and read ahead in its
        listing) as any object is."""
        lfs = self.lfs_file(inode)
        if lfs is not None:
            return await self.view.in_thread(self.lfs.read, lfs, offset, size)
        oid, listing, k = self.file(inode)
        return await self.view.read_object(inode, oid, listing, k, offset, size)

    def lfs_file(self, inode: int) -> LfsFile | None:
        """The LfsFile an inode shows (its reads come from the LFS object), or None."""
        if self.lfs is None:
            return None
        node = self.node(inode)
        return node if type(node) is LfsFile else None

    def object_of(self, inode: int) -> bytes | None:
        """The object behind a node, for its user.git.* attributes."""
        node = self.node(inode)
        if type(node) in (BlobFile, BlobLink, LfsFile):
            return node.blob
        if type(node) is TreeDir:
            return node.tree
        if type(node) is LogLink:
            return node.commit
        return None  # a ref's link, or a namespace directory

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        """user.git.id and user.git.mode of a tree entry (the mode as `git ls-tree` prints it),
        and a submodule's user.git.commit."""
        node = self.node(inode)
        kind = type(node)
        if kind is Gitlink:
            commit = node.commit.hex().encode()
            return {b"user.git.commit": commit, b"user.git.id": commit, b"user.git.mode": b"160000"}
        if kind in (BlobFile, LfsFile):
            values = {b"user.git.id": node.blob.hex().encode(), b"user.git.mode": b"100755" if node.executable else b"100644"}
            if self.lfs is not None:
                values.update(self.lfs.xattrs(node))
            return values
        if kind is BlobLink:
            return {b"user.git.id": node.blob.hex().encode(), b"user.git.mode": b"120000"}
        if kind is TreeDir:
            return {b"user.git.id": node.tree.hex().encode(), b"user.git.mode": b"040000"}
        return {}

