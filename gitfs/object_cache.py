"""Inflated objects held in memory, and the loads in flight that fill them.

The cache is byte-bounded (--cache-size) and shared by the FUSE loop and the worker threads, so
it takes a lock and never awaits. Objects larger than a quarter of the bound are never kept (one
huge object would flush everything else); they are streamed instead.

A load in flight is shared by every reader that wants the object: the first reader submits it
(urgent), later ones wait on the same load, and a read-ahead load that a reader starts waiting
for is promoted to urgent. A finished load nobody waits for goes to its `unclaimed` callback
(read-ahead: push it into the kernel's page cache, or keep it here) without waking the loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import trio

from . import helper_protocol as hp
from .workers import Job


class ObjectCache:
    """Least recently used objects first out, bounded by the sum of their sizes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, oid: bytes) -> bool:
        return oid in self._entries

    def get(self, oid: bytes):
        """The cached bytes, or None; counts as a use."""
        with self._lock:
            data = self._entries.get(oid)
            if data is not None:
                self._entries.move_to_end(oid)
            return data

    def put(self, oid: bytes, data) -> None:
        size = len(data)
        if size > self.max_entry:
            return
        with self._lock:
            old = self._entries.pop(oid, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[oid] = data
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def discard(self, oid: bytes) -> None:
        with self._lock:
            old = self._entries.pop(oid, None)
            if old is not None:
                self._bytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class _Loading:
    __slots__ = ("oid", "job", "unclaimed", "waiters", "event", "finished", "data", "error")

    def __init__(self, oid: bytes, unclaimed):
        self.oid = oid
        self.job: Job | None = None
        self.unclaimed = unclaimed  # None for a load a reader asked for
        self.waiters = 0
        self.event: trio.Event | None = None
        self.finished = False
        self.data = None
        self.error: BaseException | None = None


class Loads:
    """The object loads in flight, one per id."""

    def __init__(self, pool, cache: ObjectCache):
        self.pool = pool
        self.cache = cache
        self._loading: dict[bytes, _Loading] = {}
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None

    def loading(self, oid: bytes) -> bool:
        return oid in self._loading

    async def get(self, oid: bytes):
        """The object's bytes (cached, or loaded now), or None when it is too big to hold.
        From the trio loop; raises what the load raised."""
        data = self.cache.get(oid)
        if data is not None:
            return data
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()
        with self._lock:
            loading = self._loading.get(oid)
            if loading is None:
                loading = self._start(oid, None, hp.URGENT)
            elif loading.unclaimed is not None:
                loading.unclaimed = None  # a reader claims it: deliver it here, not ahead
                self.pool.promote(loading.job)
            if not loading.finished:
                loading.waiters += 1
                if loading.event is None:
                    loading.event = trio.Event()
        if not loading.finished:
            await loading.event.wait()
        if loading.error is not None:
            raise loading.error
        return loading.data

    def ahead(self, oid: bytes, unclaimed) -> bool:
        """Starts a read-ahead load unless the object is cached or loading; unclaimed(data) runs in
        a worker thread if no reader claimed it by the time it is loaded. True if started."""
        if oid in self.cache:
            return False
        with self._lock:
            if oid in self._loading:
                return False
            self._start(oid, unclaimed, hp.AHEAD)
        return True

    def _start(self, oid: bytes, unclaimed, lane: int) -> _Loading:
        loading = self._loading[oid] = _Loading(oid, unclaimed)
        loading.job = Job(lane, hp.Load(oid, self.cache.max_entry), lambda h, p: self._done(loading, h, p))
        self.pool.submit(loading.job)
        return loading

    def _done(self, loading: _Loading, header: hp.Loaded, payload) -> None:
        """Worker thread: the load finished."""
        # The payload is a fresh bytearray nobody else holds: kept as it is, never copied.
        data = None if header.too_big or header.error is not None else payload
        try:
            self._finish(loading, data, header.error)
        finally:
            if not loading.finished:  # a bug above: the readers get an error, never a hang
                loading.error, loading.finished = RuntimeError("load failed"), True
                self._wake(loading)

    def _finish(self, loading: _Loading, data, error) -> None:
        with self._lock:
            self._loading.pop(loading.oid, None)
            loading.data, loading.error, loading.finished = data, error, True
            unclaimed = loading.unclaimed
        if unclaimed is not None:
            if data is not None:
                unclaimed(data)
            return
        if data is not None:
            self.cache.put(loading.oid, data)
        self._wake(loading)

    def _wake(self, loading: _Loading) -> None:
        with self._lock:
            wake = loading.waiters > 0
        if wake:
            try:
                self._token.run_sync_soon(loading.event.set)
            except trio.RunFinishedError:
                pass  # the mount is ending: nobody waits any more
