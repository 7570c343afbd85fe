"""The mount's view of a repository, without FUSE: names to entries, listings, bytes by inode.

The pyfuse3 handlers (gitfs/operations.py) turn requests into calls here and the answers into
replies; everything a request means lives here, and is tested without mounting. The data flows one
way: request -> view -> store (odb) -> source -> bytes.

- The root lists the buckets 00..ff that hold objects; a bucket lists its objects by the rest of
  their id; a file holds an object's bytes. Names may be abbreviated (>= 4 hex digits in all) and
  written in upper case, as git accepts them.
- Refresh has one owner, the store: `store.generation` moves whenever a refresh saw a change, and
  the cache, the listings and the helpers all compare against it.
- Store calls that touch the disk run in threads; object bytes and listing sizes come from the
  worker pool (gitfs/workers.py), mostly computed in helper processes.
- What the kernel caches is also the view's business: pushes into the page cache (read-ahead) and
  invalidations when objects vanish go through `kernel`, an object with push(inode, offset,
  data), forget_entry(parent, name) and forget_inode(inode), called from threads of their own
  (gitfs/kernel_cache.py).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import stat
import threading
import time
from dataclasses import dataclass

import trio

import odb
from odb.lru import LRU

from . import features, helper_protocol as hp
from .inodes import ROOT_INODE, MovedInodes, bucket_inode, bucket_of_inode, namespace_base
from .kernel_cache import KernelCache
from .buckets import BucketListings
from .listing_sizes import ListingSizes
from .listings import BucketListing, RootListing
from .navigation import Navigation, no_entry
from .object_cache import Loads, ObjectCache
from .object_inodes import ObjectInodes
from .read_ahead import ReadAhead
from .status import XATTR as STATUS_XATTR
from .status import status_json
from .streams import StreamTable
from .sweep import KernelSweep
from .tuning import (
    OBJECT_TIMEOUT,
    DIRECTORY_TIMEOUT,
    DIRECTORY_BLOCK,
    FILE_BLOCK,
    LISTING_BYTES,
    AMBIGUOUS_MEMORY,
    AMBIGUOUS_KEPT,
    INLINE_MAX,
    RECENT_INODES,
)
from .xattrs import ObjectXattrs

log = logging.getLogger("gitfs")

_HEX = frozenset(b"0123456789abcdefABCDEF")


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
                 namespaces=()):
        """refs: an odb.RefStore for the .refs, .tree and .log namespaces (None: the objects only).
        inline: whether small work is done on the loop (see small()); None: where odb reads in C.
        namespaces: more namespaces (gitfs/namespace.py), each made as make(view, base inode)."""
        self.store = store
        self.pool = pool
        self.kernel = kernel
        self.raw_len = store.format.raw_len
        self.hex_len = store.format.hex_len
        self.cache = ObjectCache(cache_size)
        self.loads = Loads(pool, self.cache)
        self.kernel_cache = KernelCache(kernel, on_refused=self.cache.put) if kernel is not None else None
        self.ahead = ReadAhead(self.loads, self.cache, pool, self.kernel_cache)
        self.moved = MovedInodes()
        self.limiter = trio.CapacityLimiter(4)
        self._generation = store.generation
        # The sizes the latest lookups found (id -> size): the READ that follows a lookup then
        # needs no header read to know whether the object is small.
        self._recent_sizes: LRU[bytes, int] = LRU(max_items=RECENT_INODES)
        self._streams = StreamTable(store.open_stream, self._in_thread_plain)
        self._ambiguous: LRU[str, tuple[float, odb.AmbiguousPrefix]] = LRU(max_items=AMBIGUOUS_KEPT)
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
        # The id of an object's inode (ENOENT when no object, or more than one, has it).
        self.oid_of = self.object_inodes.oid_of
        self.navigation = Navigation(self, refs) if refs is not None else None
        # The namespaces beside the buckets: a request for an inode one owns goes to it.
        self.namespaces = [self.navigation] if self.navigation is not None else []
        self.namespaces += [make(self, namespace_base(k)) for k, make in enumerate(namespaces, start=1)]
        self._root_names = {name: ns for ns in self.namespaces for name in ns.names}
        self.counts = collections.Counter()  # requests, by kind
        self.sweep = KernelSweep(store, pool, self.kernel_cache, self._held_by_kernel, self.counts)
        self.xattrs = ObjectXattrs(self)
        self.on_loop = 0  # pieces of work done on the loop (small())
        # Small work is done on the loop (small()) only where odb reads in C: the Python path
        # would hold the loop for milliseconds on a delta chain.
        self._inline = features.engine_accelerated() is not None if inline is None else inline

    async def _in_thread_plain(self, fn, *args):
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
        if not self._inline:
            return await self.in_thread(fn, *args)
        return self._on_loop(fn, *args)

    def _on_loop(self, fn, *args):
        self.on_loop += 1
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
        self._generation = generation
        self._follow_repository()
        self.cache.clear()
        self.sweep.wanted()

    def _follow_repository(self) -> None:
        """After the store followed a moved repository, the refs are read there too."""
        refs = self.navigation.refs.refs if self.navigation is not None else None
        if refs is not None and self.store.git_dir is not None and refs.git_dir != self.store.git_dir:
            refs.relocate(self.store.git_dir, self.store.common_dir)

    def _held_by_kernel(self) -> tuple[list, list]:
        """What the kernel may hold of objects: the latest bucket listings, and (inode, id) of
        the objects looked up by name."""
        return self.buckets.held(), self.object_inodes.recent.items()

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

    def is_directory(self, inode: int) -> bool:
        namespace = self.namespace_of(inode)
        if namespace is not None:
            return namespace.is_directory(inode)
        return inode == ROOT_INODE or bucket_of_inode(inode) is not None

    def namespace_of(self, inode: int):
        """The namespace that owns the inode, or None (the root, buckets and objects)."""
        for namespace in self.namespaces:
            if namespace.owns(inode):
                return namespace
        return None

    # -- names ------------------------------------------------------------------------------

    async def lookup(self, parent: int, name: bytes) -> Attr:
        if parent == ROOT_INODE:
            namespace = self._root_names.get(name)
            if namespace is not None:
                return await namespace.lookup_root(name)
            return await self._lookup_bucket(name)
        namespace = self.namespace_of(parent)
        if namespace is not None:
            return await namespace.lookup(parent, name)
        bucket = bucket_of_inode(parent)
        if bucket is None:
            if self.is_directory(parent):
                raise no_entry()
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        return await self._lookup_object(bucket, name)

    async def _lookup_bucket(self, name: bytes) -> Attr:
        if len(name) != 2 or not _HEX.issuperset(name):
            raise no_entry()
        bucket = int(name, 16)
        if not await self.buckets.exists(bucket):
            raise no_entry()
        return self.dir_attr(bucket_inode(bucket, alias=name != name.lower()))

    async def _lookup_object(self, bucket: int, name: bytes) -> Attr:
        rest = self.hex_len - 2
        if not 2 <= len(name) <= rest or not _HEX.issuperset(name):
            raise no_entry()
        hex_id = "%02x%s" % (bucket, name.decode().lower())
        abbreviated = len(name) < rest
        if abbreviated:
            hex_id = await self._resolve_abbreviation(hex_id)
        oid = bytes.fromhex(hex_id)
        size, access, inode = await self.small(self.object_inodes.stat_and_inode, oid)
        self.object_inodes.remember(inode, oid)
        self._recent_sizes.put(oid, size)
        attr = self.object_attr(inode, size, access)
        if abbreviated or name != name.lower():
            # A new object can make a short name ambiguous at any time; and the kernel must not
            # take another spelling's dentry for the canonical one.
            attr.timeout = 0
        return attr

    async def _resolve_abbreviation(self, prefix: str) -> str:
        remembered = self._ambiguous.peek(prefix)
        if remembered is not None and remembered[0] > time.monotonic():
            raise remembered[1]
        try:
            return await self.in_thread(self.store.resolve_prefix, prefix)
        except odb.AmbiguousPrefix as e:
            # A reader retrying an ambiguous name in a loop gets the answer from memory, and the
            # log is not flooded with one line per try.
            self._ambiguous.put(prefix, (time.monotonic() + AMBIGUOUS_MEMORY, e))
            raise

    def forget(self, inode: int, count: int) -> None:
        # Object inodes come from their ids: nothing is held for them. Namespace nodes are.
        namespace = self.namespace_of(inode)
        if namespace is not None:
            namespace.forget(inode, count)

    async def readlink(self, inode: int) -> bytes:
        namespace = self.namespace_of(inode)
        if namespace is None:
            raise OSError(errno.EINVAL, "not a symlink")
        return await namespace.readlink(inode)

    async def getattr(self, inode: int) -> Attr:
        namespace = self.namespace_of(inode)
        if namespace is not None:
            return await namespace.getattr(inode)
        if self.is_directory(inode):
            return self.dir_attr(inode)
        oid = await self.oid_of(inode)
        with self._forgotten_if_gone(inode, oid):
            size, access = await self.small(self.store.stat, oid)
        return self.object_attr(inode, size, access)

    @contextlib.contextmanager
    def _forgotten_if_gone(self, inode: int, oid: bytes):
        """An object the kernel knows turned out to be gone: it must forget it at once, or
        `stat` would go on finding it (and its pages) for the hour it keeps entries."""
        try:
            yield
        except odb.ObjectNotFound:
            if self.kernel_cache is not None:
                self.sweep.forget(oid[0], oid, inode)
            raise

    # -- directories ------------------------------------------------------------------------

    async def open_dir(self, inode: int):
        """A snapshot of the directory: re-reading a directory refreshes the view."""
        if inode == ROOT_INODE:
            buckets = await self.in_thread(self._list_root)
            self.buckets.root_listed(buckets)
            return RootListing(buckets)
        namespace = self.namespace_of(inode)
        if namespace is not None:
            return await namespace.open_dir(inode)
        bucket = bucket_of_inode(inode)
        if bucket is None:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        return await self.buckets.list(bucket)

    def _list_root(self) -> list[int]:
        self.store.refresh()
        self.root_access = self.store.root_access()  # a chmod shows from the next root listing
        return self.store.nonempty_buckets()

    def replied(self, listing: BucketListing, upto: int) -> None:
        """readdir has sent the entries before upto: the kernel knows their inodes."""
        self.ahead.replied(listing, upto)

    # -- reading ----------------------------------------------------------------------------

    async def read(self, inode: int, offset: int, size: int):
        """Bytes of an object, by inode (the kernel sends no OPEN, so no handle exists)."""
        namespace = self.namespace_of(inode)
        if namespace is not None:
            return await namespace.read(inode, offset, size)
        oid = await self.oid_of(inode)
        listing, k = self.buckets.position(oid)
        return await self.read_object(inode, oid, listing, k, offset, size)

    async def read_object(self, inode: int, oid: bytes, listing, k: int, offset: int, size: int):
        """Bytes of the object oid that inode shows, at position k of listing (what read-ahead
        follows; None, -1: none), for the buckets and for namespaces whose files are objects."""
        data = self.cache.get(oid)
        if data is None:
            if oid in self._streams:
                return await self._streams.read(oid, offset, size)
            with self._forgotten_if_gone(inode, oid):
                data = await self._load(oid, listing, k, offset + size)
            if data is None:  # too big to hold: streamed
                return await self._streams.read(oid, offset, size)
        if offset == 0 and listing is not None:
            self.ahead.after_read(listing, k, self.buckets.following(listing))
        end = offset + size
        if end >= len(data):
            # The kernel keeps the pages (objects never change); holding the bytes here as well
            # would only double the memory.
            self.cache.discard(oid)
        return memoryview(data)[offset:end]

    async def _load(self, oid: bytes, listing, k: int, end: int):
        """The bytes of an object nobody holds (None: too big to hold, to be streamed). A small
        one is made on the loop when that is cheaper (see small()); it is held only if this read
        leaves some of it for the next. Otherwise a load (object_cache.Loads) makes it in a
        worker, shared by every reader that wants it meanwhile."""
        if self._inline and not self.loads.busy(oid):
            data = self._on_loop(self._small_object, oid)
            if data is not None:
                if end < len(data):
                    self.cache.put(oid, data)
                return data
        self.counts["loads_waited"] += 1
        return await self.loads.get(oid, hp.ReaderAt(listing.listing_id, k) if listing is not None else hp.NOWHERE)

    def _small_object(self, oid: bytes):
        """The object's bytes if it is at most INLINE_MAX, else None (a header read only)."""
        size = self._recent_sizes.peek(oid)
        if (self.store.read_size(oid) if size is None else size) > INLINE_MAX:
            return None
        return self.store.read(oid)[1]

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
        return status_json(self.cache.size_bytes, self.cache.max_bytes, self.counts, self.cache.parts(),
                           workers={**self.pool.counts, "on the loop": self.on_loop},
                           helpers=self.pool.helper_pids(),
                           read_ahead=self.read_ahead_counts(), streams=self._streams.status(),
                           repository_now=repository, **more)

    def read_ahead_counts(self) -> dict:
        """What read-ahead did: loaded ahead, pushed by helpers or here, refused, hedged."""
        counts = collections.Counter(self.ahead.counts)
        counts.update({f"{k} by helpers" if k == "pushed" else k: v for k, v in self.loads.counts.items()})
        if self.kernel_cache is not None:
            counts.update(self.kernel_cache.counts)
        return dict(counts)

    async def close(self) -> None:
        self._streams.close()
        if self.kernel_cache is not None:
            self.kernel_cache.close()
