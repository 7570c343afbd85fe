"""An object's bytes for a READ: from the cache, made on the loop, loaded by a worker, or streamed.

The buckets and `.tree` read their files' objects here, so both share the cache, the loads that
readers of one object share, the read-ahead that follows a listing, and the streams of objects too
big to hold (streams.py).
"""

from __future__ import annotations

import contextlib

import odb
from odb.lru import LRU

from gitfs.engine import helper_protocol as hp
from gitfs.engine.streams import StreamTable
from gitfs.tuning import INLINE_MAX, RECENT_INODES


class ObjectReads:
    def __init__(self, view):
        """view: the MountView whose cache, loads, read-ahead, buckets and sweep serve reads."""
        self.view = view
        self.store = view.store
        self.cache = view.cache
        self.loads = view.loads
        # The sizes the latest lookups found (id -> size): the READ that follows a lookup then
        # needs no header read to know whether the object is small.
        self.recent_sizes: LRU[bytes, int] = LRU(max_items=RECENT_INODES)
        self.streams = StreamTable(view.store.open_stream, view.in_thread_plain)

    async def read(self, inode: int, oid: bytes, listing, k: int, offset: int, size: int):
        """Bytes of the object oid that inode shows, at position k of listing (what read-ahead
        follows; None, -1: none)."""
        data = self.cache.get(oid)
        if offset == 0 and listing is not None:
            # A walk of the whole mount may be about to push it (gitfs/engine/pack_walk.py).
            walk = self.view.walk
            walk.read_at(listing, k)
            if data is None:
                await walk.wait(oid, listing, k)
                data = self.cache.get(oid)
        if data is None:
            if oid in self.streams:
                return await self.streams.read(oid, offset, size)
            with self.forgotten_if_gone(inode, oid):
                data = await self._load(oid, listing, k, offset + size)
            if data is None:  # too big to hold: streamed
                return await self.streams.read(oid, offset, size)
        if offset == 0 and listing is not None:
            self.view.ahead.after_read(listing, k, self.view.buckets.following(listing))
        end = offset + size
        if end >= len(data):
            # The kernel keeps the pages (objects never change); holding the bytes here as well
            # would only double the memory.
            self.cache.discard(oid)
        return memoryview(data)[offset:end]

    @contextlib.contextmanager
    def forgotten_if_gone(self, inode: int, oid: bytes):
        """An object the kernel knows turned out to be gone: it must forget it at once, or
        `stat` would go on finding it (and its pages) for the hour it keeps entries."""
        try:
            yield
        except odb.ObjectNotFound:
            if self.view.kernel_cache is not None:
                self.view.sweep.forget(oid[0], oid, inode)
            raise

    async def _load(self, oid: bytes, listing, k: int, end: int):
        """The bytes of an object nobody holds (None: too big to hold, to be streamed). A small
        one is made on the loop when that is cheaper (see MountView.small); it is held only if
        this read leaves some of it for the next. Otherwise a load (object_cache.Loads) makes it
        in a worker, shared by every reader that wants it meanwhile."""
        view = self.view
        if view.inline and not self.loads.busy(oid):
            data = view.on_loop(self._small_object, oid)
            if data is not None:
                if end < len(data):
                    self.cache.put(oid, data)
                return data
        view.counts["loads_waited"] += 1
        return await self.loads.get(oid, hp.ReaderAt(listing.listing_id, k) if listing is not None else hp.NOWHERE)

    def _small_object(self, oid: bytes):
        """The object's bytes if it is at most INLINE_MAX, else None (a header read only)."""
        size = self.recent_sizes.peek(oid)
        if (self.store.read_size(oid) if size is None else size) > INLINE_MAX:
            return None
        return self.store.read(oid)[1]

    def close(self) -> None:
        self.streams.close()
