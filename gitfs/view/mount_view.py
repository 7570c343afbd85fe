"""The mount's view of a repository, without FUSE: a thin root over namespaces, and what they share.

The pyfuse3 handlers (gitfs/fuse/operations.py) turn requests into calls here and the answers into
replies; everything a request means lives here, and is tested without mounting. The data flows one
way: request -> view -> namespace -> store (odb) -> source -> bytes.

- The root lists the names of the buckets namespace (gitfs/namespaces/bucket_namespace.py: 00..ff, each
  listing its objects) and finds the hidden ones of the others by name (.refs, .tree, .log, and
  any given to the view: gitfs/namespaces/namespace.py). A request for any other inode goes to the namespace
  that owns it.
- What the namespaces share is here: the object cache and its loads, read-ahead, object reads
  (gitfs/engine/object_reads.py), listing sizes, the Access values files show, and small work on the loop.
- Refresh has one owner, the store: `store.generation` moves whenever a refresh saw a change, and
  the cache, the listings and the helpers all compare against it.
- Store calls that touch the disk run in threads; object bytes and listing sizes come from the
  worker pool (gitfs/engine/workers.py), mostly computed in helper processes.
- What the kernel caches is also the view's business: pushes into the page cache (read-ahead) and
  invalidations when objects vanish go through `kernel`, an object with push(inode, offset,
  data), forget_entry(parent, name) and forget_inode(inode), called from threads of their own
  (gitfs/fuse/kernel_cache.py).
"""

from __future__ import annotations

import collections
import errno
import logging
import stat
import threading
from dataclasses import dataclass

import trio

import odb

from gitfs import features
from gitfs.namespaces.bucket_namespace import BucketsNamespace
from gitfs.view.buckets import BucketListings
from gitfs.view.inodes import (FIRST_ADDED_NAMESPACE, ROOT_INODE, MovedInodes, bucket_of_inode, is_object_inode,
                               namespace_base)
from gitfs.fuse.kernel_cache import KernelCache
from gitfs.view.listing_sizes import ListingSizes
from gitfs.namespaces.log_namespace import LogNamespace
from gitfs.namespaces.namespace import no_entry
from gitfs.engine.object_cache import Loads, ObjectCache
from gitfs.view.object_inodes import ObjectInodes
from gitfs.engine.object_reads import ObjectReads
from gitfs.engine.pack_walk import PackOrderWalk
from gitfs.engine.read_ahead import ReadAhead
from gitfs.namespaces.refs_namespace import RefsNamespace
from gitfs.view.status import XATTR as STATUS_XATTR
from gitfs.view.status import status_json
from gitfs.view.sweep import KernelSweep
from gitfs.namespaces.tree_namespace import TreeNamespace
from gitfs.tuning import DIRECTORY_BLOCK, DIRECTORY_TIMEOUT, FILE_BLOCK, LISTING_BYTES, OBJECT_TIMEOUT
from gitfs.view.xattrs import ObjectXattrs

log = logging.getLogger("gitfs")

@dataclass(slots=True)
class Attr:
    """What the kernel is told about an entry."""

    inode: int
    mode: int  # st_mode, type bits included
    size: int
    uid: int
    gid: int
    mtime_ns: int
    nlink: int
    timeout: float  # entry and attribute timeout
    blksize: int


class MountView:
    object_timeout = OBJECT_TIMEOUT
    directory_timeout = DIRECTORY_TIMEOUT

    def __init__(self, store, pool, *, cache_size: int = 256 << 20, kernel=None, refs=None, inline=None,
                 namespaces=(), mountpoint: str | None = None):
        """refs: an odb.RefStore for the .refs, .tree and .log namespaces (None: the objects only).
        inline: whether small work is done on the loop (see small()); None: where odb reads in C.
        namespaces: more namespaces (gitfs/namespaces/namespace.py), each made as make(view, base inode).
        mountpoint: where the kernel shows this view; a walk of it is then served in pack order."""
        self.store = store
        self.pool = pool
        self.kernel = kernel
        self.raw_len = store.format.raw_len
        self.hex_len = store.format.hex_len
        self.cache = ObjectCache(cache_size)
        self.loads = Loads(pool, self.cache)
        self.kernel_cache = KernelCache(kernel, on_refused=self.cache.put) if kernel is not None else None
        self.counts = collections.Counter()  # requests, by kind
        self.moved = MovedInodes()
        self.limiter = trio.CapacityLimiter(4)
        self._generation = store.generation
        # Who may see what (default_permissions): the repository's owners and modes, as odb
        # reads them (odb/access.py). accesses[0] is what an object shows before its own is read.
        self.root_access = store.root_access()
        self.accesses = [self.root_access._replace(mode=self.root_access.mode & 0o444)]
        self._access_ids = {self.accesses[0]: 0}
        self._access_lock = threading.Lock()
        self.sizes = ListingSizes(store, pool, self.access_id)
        self.buckets = BucketListings(store, self.sizes, self.moved, self.in_thread,
                                      max_bytes=min(LISTING_BYTES, self.cache.max_bytes // 4),
                                      hold=lambda nbytes: self.cache.hold("bucket listings", nbytes))
        self.object_inodes = ObjectInodes(store, self.moved, self.buckets.latest, self.small)
        self.walk = PackOrderWalk(store, self.cache, kernel, mountpoint, self.buckets.latest.peek, self.counts)
        self.ahead = ReadAhead(self.loads, self.cache, pool, self.kernel_cache, self.walk)
        self.sweep = KernelSweep(store, pool, self.kernel_cache, self._held_by_kernel, self.counts)
        self.reads = ObjectReads(self)
        self.on_loop_count = 0  # pieces of work done on the loop (small())
        # Called on the loop's thread when store work found the repository changed
        # (_check_generation): the compiled request path takes a new snapshot from there.
        self.watchers: list = []
        self.reporters: dict = {}  # more of the status: name -> what gives its dict
        self.root_watchers: list = []  # told(access) of a new root_access (a worker thread)
        # Small work is done on the loop (small()) only where odb reads in C: the Python path
        # would hold the loop for milliseconds on a delta chain.
        self.inline = features.engine_accelerated() is not None if inline is None else inline
        # The namespaces: the buckets, whose names the root lists, and those found by name.
        self.objects = BucketsNamespace(self)
        self.refs = refs
        self.tree: TreeNamespace | None = None
        hidden = []
        if refs is not None:
            self.tree = TreeNamespace(self, refs)
            hidden = [RefsNamespace(self, refs), self.tree, LogNamespace(self, refs)]
        hidden += [make(self, namespace_base(k)) for k, make in enumerate(namespaces, start=FIRST_ADDED_NAMESPACE)]
        self.namespaces = hidden
        self._root_names = {name: ns for ns in hidden for name in ns.names}
        self.xattrs = ObjectXattrs(self)

    async def in_thread_plain(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def in_thread(self, fn, *args):
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self._check_generation()

    async def small(self, fn, *args):
        """fn(*args), for work smaller than the hop to a worker thread and back (an index
        lookup, an entry header, an object up to INLINE_MAX through the compiled engine): done
        on the loop. A hop costs three thread wake-ups and a GIL hand-off each way, more CPU
        than the work, and under load it costs most: 32 readers of 9,600 random objects took
        12.7 s with such work in threads whenever a request waited, 6.0 s with all of it on the
        loop (and one reader 1.4 s -> 0.7 s for 1,000)."""
        if not self.inline:
            return await self.in_thread(fn, *args)
        return self.on_loop(fn, *args)

    def on_loop(self, fn, *args):
        self.on_loop_count += 1
        try:
            return fn(*args)
        finally:
            self._check_generation()

    # -- refresh ----------------------------------------------------------------------------

    def _check_generation(self) -> None:
        """The store saw the repository change: nothing derived from it may outlive that."""
        generation = self.store.generation
        if generation == self._generation:
            return
        for watch in self.watchers:
            watch()
        self._generation = generation
        self._follow_repository()
        self.cache.clear()
        self.sweep.wanted()

    def _follow_repository(self) -> None:
        """After the store followed a moved repository, the refs are read there too."""
        refs = self.refs
        if refs is not None and self.store.git_dir is not None and refs.git_dir != self.store.git_dir:
            refs.relocate(self.store.git_dir, self.store.common_dir)

    def _held_by_kernel(self) -> tuple[list, list]:
        """What the kernel may hold of objects: the latest bucket listings, and (inode, id) of
        the objects looked up by name."""
        return self.buckets.held(), self.object_inodes.recent.items()

    def list_root(self) -> list[int]:
        """Thread: the buckets that hold objects, after a refresh."""
        self.store.refresh()
        self.root_access = self.store.root_access()  # a chmod shows from the next root listing
        for told in self.root_watchers:
            told(self.root_access)
        return self.store.nonempty_buckets()

    # -- attributes -------------------------------------------------------------------------

    def access_id(self, access) -> int:
        """A small number for an odb.Access (a listing holds one per entry). Worker threads."""
        known = self._access_ids.get(access)
        if known is None:
            with self._access_lock:
                known = self._access_ids.get(access)
                if known is None:
                    known = self._access_ids[access] = len(self.accesses)
                    self.accesses.append(access)
        return known

    def dir_attr(self, inode: int) -> Attr:
        """The root, a bucket, a namespace directory: they show the objects directory (odb's
        root_access: its owner, group and mode, masked by what the path to it allows)."""
        a = self.root_access
        return Attr(inode, stat.S_IFDIR | a.mode, 0, a.uid, a.gid, a.mtime_ns, 2, DIRECTORY_TIMEOUT, DIRECTORY_BLOCK)

    def object_attr(self, inode: int, size: int, access=None) -> Attr:
        """An object file: it shows the file that holds the object (its pack, its loose file)."""
        a = access or self.accesses[0]
        return Attr(inode, stat.S_IFREG | a.mode, size, a.uid, a.gid, a.mtime_ns, 1, OBJECT_TIMEOUT, FILE_BLOCK)

    def broken_attr(self, inode: int) -> Attr:
        # Listed so that the damage is visible, but never cached: the next lookup asks again.
        attr = self.object_attr(inode, 0)
        attr.timeout = 0
        return attr

    # -- the root, and the namespace of every other inode ---------------------------------------

    def namespace_of(self, inode: int):
        """The namespace that owns the inode, or None (the root, or an inode nobody gave out)."""
        if is_object_inode(inode):  # most requests: checked first
            return self.objects
        for namespace in self.namespaces:
            if namespace.owns(inode):
                return namespace
        return self.objects if self.objects.owns(inode) else None

    def _owner(self, inode: int):
        namespace = self.namespace_of(inode)
        if namespace is None:
            raise no_entry()
        return namespace

    def is_directory(self, inode: int) -> bool:
        if inode == ROOT_INODE:
            return True
        namespace = self.namespace_of(inode)
        return namespace is not None and namespace.is_directory(inode)

    async def lookup(self, parent: int, name: bytes) -> Attr:
        if parent == ROOT_INODE:
            return await self._root_names.get(name, self.objects).lookup_root(name)
        return await self._owner(parent).lookup(parent, name)

    async def getattr(self, inode: int) -> Attr:
        if inode == ROOT_INODE:
            return self.dir_attr(inode)
        return await self._owner(inode).getattr(inode)

    def forget(self, inode: int, count: int) -> None:
        namespace = self.namespace_of(inode)
        if namespace is not None:
            namespace.forget(inode, count)

    async def readlink(self, inode: int) -> bytes:
        if inode == ROOT_INODE:
            raise OSError(errno.EINVAL, "not a symlink")
        return await self._owner(inode).readlink(inode)

    async def open_dir(self, inode: int, reader: int = 0):
        """A snapshot of the directory: re-reading a directory refreshes the view. reader: the
        thread that opens it (the kernel's pid of the request), which a walk follows."""
        if inode == ROOT_INODE:
            self.walk.root_listed(reader)
            return await self.objects.open_root()  # the hidden names are listed nowhere
        bucket = bucket_of_inode(inode)
        if bucket is not None:
            self.walk.entered(bucket, reader)
        return await self._owner(inode).open_dir(inode)

    async def readdir(self, inode: int, listing, start: int, out) -> None:
        """Sends the entries of listing (from open_dir(inode)) from start on into out
        (gitfs/namespaces/namespace.py DirectoryReplies)."""
        owner = self.objects if inode == ROOT_INODE else self._owner(inode)
        await owner.readdir(listing, start, out)

    def replied(self, listing, upto: int) -> None:
        """readdir has sent the entries before upto: the kernel knows their inodes."""
        self.ahead.replied(listing, upto)

    async def read(self, inode: int, offset: int, size: int):
        if inode == ROOT_INODE:
            raise IsADirectoryError(errno.EISDIR, "not a file")
        return await self._owner(inode).read(inode, offset, size)

    # -- extended attributes ------------------------------------------------------------------

    async def xattr(self, inode: int, name: bytes) -> bytes:
        if inode == ROOT_INODE and name == STATUS_XATTR:
            return self.status()
        return await self.xattrs.value(inode, name)

    async def xattr_names(self, inode: int) -> list[bytes]:
        if inode == ROOT_INODE:
            return [STATUS_XATTR]
        return await self.xattrs.names(inode)

    def status(self) -> bytes:
        """What `gitfs status` shows of this mount (the root's user.gitfs.status)."""
        try:
            self.store.follow_moves()  # (one stat while nothing moved)
        except odb.RepositoryGone:
            pass  # store.gone says why
        self._check_generation()
        repository = {"path": self.store.git_dir or self.store.objects_dir, "gone": self.store.gone}
        more = {}
        for namespace in self.namespaces:
            more.update(namespace.status())
        for name, report in self.reporters.items():
            more[name] = report()
        return status_json(self.cache.size_bytes, self.cache.max_bytes, self.counts, self.cache.parts(),
                           workers={**self.pool.counts, "on the loop": self.on_loop_count},
                           helpers=self.pool.helper_pids(),
                           read_ahead=self.read_ahead_counts(), streams=self.reads.streams.status(),
                           repository_now=repository, **more)

    def read_ahead_counts(self) -> dict:
        """What read-ahead did: loaded ahead, pushed by helpers or here, refused, hedged."""
        counts = collections.Counter(self.ahead.counts)
        counts.update({f"{k} by helpers" if k == "pushed" else k: v for k, v in self.loads.counts.items()})
        if self.kernel_cache is not None:
            counts.update(self.kernel_cache.counts)
        return dict(counts)

    async def close(self) -> None:
        self.walk.close()
        self.reads.close()
        if self.kernel_cache is not None:
            self.kernel_cache.close()
