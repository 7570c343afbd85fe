"""The pyfuse3 handlers: filesystem requests turned into object-store calls."""

from __future__ import annotations

import bisect
import collections
import errno
import logging
import os
import stat
import time

import pyfuse3
import trio

import odb

from .errors import fuse_errors, read_only
from .file_handles import StreamedObject, WholeObject
from .inodes import ROOT_INODE, InodeTable, bucket_inode, bucket_of_inode
from .load_process import LoadProcess
from .object_cache import ObjectCache
from .object_loader import one_at_a_time
from .size_reader import SizeReader
from .status import XATTR as STATUS_XATTR, status_json

log = logging.getLogger("gitfs")

# Objects never change, so the kernel may keep their names and attributes for
# long. Directories change whenever the repository does.
OBJECT_TIMEOUT = 3600.0
DIRECTORY_TIMEOUT = 1.0
# A reader opening a bucket's objects in listing order (grep -r, find -exec)
# gets the next ones inflated ahead of it, up to this many objects or bytes.
READ_AHEAD_COUNT = 128
READ_AHEAD_BYTES = 32 << 20
LISTINGS_KEPT = 8
BLOCK_SIZE = 128 * 1024

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT
_HEX = frozenset(b"0123456789abcdef")
_XATTRS = (b"user.git.type", b"user.git.source", b"user.git.offset", b"user.git.delta_base")


class _Listing:
    """A snapshot of one directory taken at opendir, so readdir offsets stay stable.

    The latest listing of each bucket also guides read-ahead: it knows the
    order a recursive reader will open the objects in, and their sizes.
    """

    __slots__ = ("bucket", "names", "attrs", "filled", "batches", "generation", "last_opened", "ahead_until")

    def __init__(self, bucket, names, generation: int = 0):
        self.bucket = bucket  # None for the root
        # The root: bucket names. A bucket: its sorted hex ids (the entry
        # name is an id without its first two digits).
        self.names = names
        self.attrs = [None] * len(names) if bucket is not None else None  # size or error
        self.filled = 0  # attrs known so far, from the front (the SizeReader fills them)
        self.batches = None  # the SizeReader's batches still to read
        self.generation = generation  # the store's generation when listed
        self.last_opened = -1
        self.ahead_until = 0


class GitOperations(pyfuse3.Operations):
    """Root -> 256 fanout buckets -> one read-only file per object."""

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, store, *, cache_size: int = 256 << 20, threads: int | None = None,
                 load_processes: int = 0, size_processes: int = 0, close_fds=()):
        """load_processes: inflate in this many forked helper processes (one per
        loader thread) instead of in loader threads of this process; they fork
        here, so call this before anything starts threads or opens the FUSE
        device. size_processes: helpers that only read sizes for listings, beside
        the first load process (a walk over every object is bound by header reads).
        close_fds are descriptors the helpers must not keep open."""
        super().__init__()
        self.store = store
        self.hex_len = store.format.hex_len
        self.inodes = InodeTable()
        threads = threads or max(2, os.cpu_count() or 2)
        self.limiter = trio.CapacityLimiter(threads)
        self._generation = 0  # bumped whenever a refresh found the store changed
        self._load_processes = []
        loads = [one_at_a_time(self._load_whole)] * threads
        if load_processes:
            max_entry = cache_size // 4
            self._load_processes = [LoadProcess(store, max_entry, lambda: self._generation, close_fds)
                                    for _ in range(load_processes)]
            loads = [p.load_many for p in self._load_processes]
            self._load_processes += [LoadProcess(store, max_entry, lambda: self._generation, close_fds)
                                     for _ in range(size_processes)]
        self.cache = ObjectCache(cache_size, loads)
        # One size reader per helper that reads sizes: the first load process and the size
        # processes; without helpers, one thread reading here.
        sizers = self._load_processes[:1] + self._load_processes[load_processes:]
        self.sizes = SizeReader([self._sizes_by(p) for p in sizers] or [self._sizes_by(None)])
        # The bucket a walk in order will open next, listed (and its sizes read) ahead.
        self._speculative: _Listing | None = None
        self._handles: dict[int, object] = {}
        self._open_objects: dict[bytes, int] = {}  # oid -> open whole-object handles
        # bucket -> its last listing, for read-ahead; only the few buckets
        # walked most recently, since a listing of a big bucket is big.
        self._latest_listing: collections.OrderedDict[int, _Listing] = collections.OrderedDict()
        self._next_fh = 1
        self._nonempty_buckets: set[int] = set()
        self._uid = os.getuid()
        self._gid = os.getgid()
        self._time_ns = time.time_ns()
        self.stats: collections.Counter = collections.Counter()  # logged at unmount

    def close(self) -> None:
        """After the loop has ended: stop the loader threads before the store closes."""
        self.sizes.stop()
        self.cache.close()
        for process in self._load_processes:
            process.close()

    # -- helpers -----------------------------------------------------------

    async def _in_thread(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def _new_fh(self, value) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = value
        return fh

    def _base_attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.st_uid = self._uid
        a.st_gid = self._gid
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self._time_ns
        a.st_blksize = BLOCK_SIZE
        return a

    def _dir_attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = self._base_attrs(inode)
        a.st_mode = stat.S_IFDIR | 0o555
        a.st_nlink = 2
        a.entry_timeout = a.attr_timeout = DIRECTORY_TIMEOUT
        return a

    def _file_attrs(self, inode: int, size: int) -> pyfuse3.EntryAttributes:
        a = self._base_attrs(inode)
        a.st_mode = stat.S_IFREG | 0o444
        a.st_nlink = 1
        a.st_size = size
        a.st_blocks = (size + 511) // 512
        a.entry_timeout = a.attr_timeout = OBJECT_TIMEOUT
        return a

    def _broken_attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        # Listed so that the damage is visible, but never cached: the next
        # lookup or open asks again and gets EIO.
        a = self._file_attrs(inode, 0)
        a.entry_timeout = a.attr_timeout = 0
        return a

    def _object_oid(self, inode: int) -> bytes:
        oid = self.inodes.oid_of(inode)
        if oid is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return oid

    def _store_changed(self, changed: bool) -> None:
        if changed:
            # Objects may have vanished; cached bytes must not outlive them.
            self.cache.clear()
            self._generation += 1

    # -- lookup and attributes --------------------------------------------

    @fuse_errors
    async def lookup(self, parent_inode, name, ctx=None):
        if name == b".":
            return await self.getattr(parent_inode, ctx)
        if name == b"..":
            return self._dir_attrs(ROOT_INODE)
        if parent_inode == ROOT_INODE:
            return await self._lookup_bucket(name)
        bucket = bucket_of_inode(parent_inode)
        if bucket is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return await self._lookup_object(bucket, name)

    async def _lookup_bucket(self, name: bytes):
        if len(name) != 2 or not _HEX.issuperset(name):
            raise pyfuse3.FUSEError(errno.ENOENT)
        bucket = int(name, 16)
        if bucket not in self._nonempty_buckets:
            if not await self._in_thread(self.store.iter_bucket, bucket):
                raise pyfuse3.FUSEError(errno.ENOENT)
            self._nonempty_buckets.add(bucket)
        return self._dir_attrs(bucket_inode(bucket))

    async def _lookup_object(self, bucket: int, name: bytes):
        rest = self.hex_len - 2
        if not 2 <= len(name) <= rest or not _HEX.issuperset(name):
            raise pyfuse3.FUSEError(errno.ENOENT)
        hex_id = "%02x%s" % (bucket, name.decode())
        if len(name) < rest:
            hex_id = await self._in_thread(self.store.resolve_prefix, hex_id)
        oid = bytes.fromhex(hex_id)
        size = await self._in_thread(self.store.read_size, oid)
        inode = self.inodes.inode_for(oid)
        attrs = self._file_attrs(inode, size)
        if len(name) < rest:
            # A new object can make the short name ambiguous at any time.
            attrs.entry_timeout = 0
        self.inodes.remember(inode, oid)
        return attrs

    @fuse_errors
    async def forget(self, inode_list):
        for inode, count in inode_list:
            self.inodes.forget(inode, count)

    @fuse_errors
    async def getattr(self, inode, ctx=None):
        if inode == ROOT_INODE or bucket_of_inode(inode) is not None:
            return self._dir_attrs(inode)
        oid = self._object_oid(inode)
        size = await self._in_thread(self.store.read_size, oid)
        return self._file_attrs(inode, size)

    # -- directories --------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode, ctx):
        if inode == ROOT_INODE:
            changed, buckets = await self._in_thread(self._snapshot_root)
            self._store_changed(changed)
            self._nonempty_buckets = set(buckets)
            return self._new_fh(_Listing(None, ["%02x" % b for b in buckets]))
        bucket = bucket_of_inode(inode)
        if bucket is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        listing = await self._list_bucket(bucket)
        if listing.names:
            self._nonempty_buckets.add(bucket)
        self._latest_listing[bucket] = listing
        self._latest_listing.move_to_end(bucket)
        if len(self._latest_listing) > LISTINGS_KEPT:
            self._latest_listing.popitem(last=False)
        self.sizes.want(listing, urgent=True)
        return self._new_fh(listing)

    async def _list_bucket(self, bucket: int) -> _Listing:
        """A fresh snapshot of the bucket; also lists the next bucket, for a walk in order.

        The speculative listing of this bucket, taken at the previous opendir, is the
        snapshot when nothing has changed since: refresh() saw no change to the packs
        or to this bucket's loose objects, and no other refresh did either.
        """
        spec, self._speculative = self._speculative, None
        if spec is not None and (spec.bucket != bucket or spec.generation != self._generation):
            spec = None
        after = self._next_bucket(bucket)
        changed, hex_ids, next_ids = await self._in_thread(self._snapshot_bucket, bucket, spec is None, after)
        self._store_changed(changed)
        if hex_ids is None and spec.generation != self._generation:
            hex_ids = await self._in_thread(self.store.iter_bucket, bucket)  # another opendir saw a change
        listing = spec if hex_ids is None else _Listing(bucket, hex_ids, self._generation)
        if next_ids is not None and not changed:
            self._speculative = _Listing(after, next_ids, self._generation)
            self.sizes.want(self._speculative, urgent=False)
        return listing

    def _next_bucket(self, bucket: int) -> int | None:
        return next((b for b in range(bucket + 1, 256) if b in self._nonempty_buckets), None)

    # Worker-thread halves of opendir: refresh notices new packs and pruned
    # objects, then the listing is taken.

    def _snapshot_root(self) -> tuple[bool, list[int]]:
        changed = self.store.refresh()
        return changed, sorted(self.store.nonempty_buckets())

    def _snapshot_bucket(self, bucket: int, need_ids: bool, after: int | None):
        changed = self.store.refresh(bucket)
        hex_ids = self.store.iter_bucket(bucket) if changed or need_ids else None
        next_ids = self.store.iter_bucket(after) if after is not None else None
        return changed, hex_ids, next_ids

    @fuse_errors
    async def readdir(self, fh, start_id, token):
        listing = self._listings_get(fh)
        if listing.bucket is None:
            for i in range(start_id, len(listing.names)):
                name = listing.names[i]
                attrs = self._dir_attrs(bucket_inode(int(name, 16)))
                if not pyfuse3.readdir_reply(token, name.encode(), attrs, i + 1):
                    return
            return
        # One attributes object serves every entry: readdir_reply copies it.
        attrs = self._file_attrs(0, 0)
        inode_for, remember, reply = self.inodes.inode_for, self.inodes.remember, pyfuse3.readdir_reply
        sizes, oids = listing.attrs, listing.names
        for i in range(start_id, len(oids)):
            if i >= listing.filled:
                await self.sizes.wait(listing, i)
            size = sizes[i]
            oid = bytes.fromhex(oids[i])
            inode = inode_for(oid)
            if isinstance(size, int):
                attrs.st_ino = inode
                attrs.st_size = size
                attrs.st_blocks = (size + 511) >> 9
                entry = attrs
            else:
                entry = self._broken_attrs(inode)
            if not reply(token, oids[i][2:].encode(), entry, i + 1):
                return
            remember(inode, oid)

    def _listings_get(self, fh) -> _Listing:
        listing = self._handles.get(fh)
        if not isinstance(listing, _Listing):
            raise pyfuse3.FUSEError(errno.EBADF)
        return listing

    def _sizes_by(self, process: LoadProcess | None):
        n = self.store.format.raw_len

        def read_sizes(ids: bytes) -> list:
            """SizeReader thread: sizes of the concatenated raw ids (an exception for each failure)."""
            if process is not None:
                sizes = process.sizes(ids)
            else:
                sizes = [self._local_size(ids[i:i + n]) for i in range(0, len(ids), n)]
            if not all(type(size) is int for size in sizes):
                for k, size in enumerate(sizes):
                    if not isinstance(size, int):
                        log.error("listing %s: %s", ids[k * n:(k + 1) * n].hex(), size)
            return sizes
        return read_sizes

    def _local_size(self, raw: bytes):
        try:
            return self.store.read_size(raw)
        except odb.OdbError as e:
            return e

    @fuse_errors
    async def releasedir(self, fh):
        self._handles.pop(fh, None)

    # -- files --------------------------------------------------------------

    @fuse_errors
    async def open(self, inode, flags, ctx):
        if flags & _WRITE_FLAGS:
            raise pyfuse3.FUSEError(errno.EROFS)
        oid = self._object_oid(inode)
        self.stats["open"] += 1
        data = self.cache.peek(oid)
        listing, i = self._listing_position(oid)
        if data is None:
            size = listing.attrs[i] if listing is not None else None
            self.stats["open_waited"] += 1
            data = await self.cache.get(oid, size if isinstance(size, int) else None)
        if listing is not None:
            self._read_ahead_after(listing, i)
        if data is None:
            handle = StreamedObject(oid, self.store, self.limiter)
        else:
            handle = WholeObject(oid, data)
            self._open_objects[oid] = self._open_objects.get(oid, 0) + 1
        return pyfuse3.FileInfo(fh=self._new_fh(handle), keep_cache=True)

    def _load_whole(self, oid: bytes, size: int | None):
        """Worker thread: the object's bytes, or None when it is too big to hold whole."""
        if size is None:
            size = self.store.read_size(oid)
        if size > self.cache.max_entry:
            return None
        return self.store.read(oid)[1]

    def _listing_position(self, oid: bytes) -> tuple[_Listing | None, int]:
        """Where oid sits in the latest listing of its bucket, if it is there."""
        listing = self._latest_listing.get(oid[0])
        if listing is None:
            return None, 0
        hex_id = oid.hex()
        i = bisect.bisect_left(listing.names, hex_id)
        if i == len(listing.names) or listing.names[i] != hex_id:
            return None, 0
        return listing, i

    def _read_ahead_after(self, listing: _Listing, i: int) -> None:
        previous, listing.last_opened = listing.last_opened, i
        # Only a walk in listing order is worth guessing ahead of; random
        # readers would make it inflate objects nobody reads.
        if not 0 < i - previous <= 2 or listing.ahead_until > i + READ_AHEAD_COUNT // 2:
            return
        start = max(i + 1, listing.ahead_until)
        stop = min(len(listing.names), i + 1 + READ_AHEAD_COUNT)
        items, budget = [], READ_AHEAD_BYTES
        for j in range(start, stop):
            size = listing.attrs[j]
            if not isinstance(size, int) or size > self.cache.max_entry:
                continue
            budget -= size
            if budget < 0:
                stop = j
                break
            items.append((bytes.fromhex(listing.names[j]), size))
        listing.ahead_until = stop
        self.cache.read_ahead(items)

    @fuse_errors
    async def read(self, fh, off, size):
        handle = self._handles[fh]
        if type(handle) is WholeObject:
            return handle.data[off:off + size]
        return await handle.read(off, size)

    @fuse_errors
    async def release(self, fh):
        handle = self._handles.pop(fh, None)
        if type(handle) is WholeObject:
            left = self._open_objects.pop(handle.oid) - 1
            if left:
                self._open_objects[handle.oid] = left
            else:
                # The kernel keeps the pages (keep_cache); holding the bytes
                # here as well would only double the memory.
                self.cache.discard(handle.oid)
        elif handle is not None:
            await handle.close()

    # -- extended attributes -------------------------------------------------

    def _xattr_values(self, inode: int) -> dict[bytes, bytes]:
        if inode == ROOT_INODE:  # `gitfs status` reads the daemon's facts here (not listed)
            return {STATUS_XATTR: status_json(self.cache.size_bytes, self.cache.max_bytes, self.stats)}
        if bucket_of_inode(inode) is not None:
            return {}
        info = self.store.locate(self._object_oid(inode))
        values = {b"user.git.type": info.kind.encode(), b"user.git.source": os.fsencode(info.source)}
        if info.offset is not None:
            values[b"user.git.offset"] = str(info.offset).encode()
        if info.delta_base is not None:
            values[b"user.git.delta_base"] = info.delta_base.encode()
        return values

    @fuse_errors
    async def listxattr(self, inode, ctx):
        return [name for name in _XATTRS if name in self._xattr_values(inode)]

    @fuse_errors
    async def getxattr(self, inode, name, ctx):
        value = self._xattr_values(inode).get(name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    # -- the filesystem ------------------------------------------------------

    @fuse_errors
    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = BLOCK_SIZE
        s.f_namemax = 255
        return s

    @read_only
    async def setattr(self, inode, attr, fields, fh, ctx): ...

    @read_only
    async def mknod(self, parent_inode, name, mode, rdev, ctx): ...

    @read_only
    async def mkdir(self, parent_inode, name, mode, ctx): ...

    @read_only
    async def unlink(self, parent_inode, name, ctx): ...

    @read_only
    async def rmdir(self, parent_inode, name, ctx): ...

    @read_only
    async def symlink(self, parent_inode, name, target, ctx): ...

    @read_only
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx): ...

    @read_only
    async def link(self, inode, new_parent_inode, new_name, ctx): ...

    @read_only
    async def write(self, fh, off, buf): ...

    @read_only
    async def create(self, parent_inode, name, mode, flags, ctx): ...

    @read_only
    async def setxattr(self, inode, name, value, ctx): ...

    @read_only
    async def removexattr(self, inode, name, ctx): ...

    @fuse_errors
    async def fsync(self, fh, datasync):
        pass  # nothing is ever dirty

    @fuse_errors
    async def fsyncdir(self, fh, datasync):
        pass
