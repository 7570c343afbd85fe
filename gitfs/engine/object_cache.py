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

import collections
import threading

import trio

from odb.lru import LRU

from gitfs.engine import answers
from gitfs.engine import helper_protocol as hp
from gitfs.engine import loop
from gitfs.tuning import HEDGE_AFTER
from gitfs.engine.workers import Job


class ObjectCache:
    """Least recently used objects first out, bounded by the sum of their sizes and of what the
    rest of the mount holds (listings, parsed trees, ref tables: hold()), so that --cache-size
    bounds all of it; objects make room for the others, which keep their own bounds."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4
        self._entries: LRU[bytes, bytes] = LRU(max_bytes=max_bytes)  # bounded again by hold()
        self._held: dict[str, int] = {}
        self._held_bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """Everything counted against the bound: objects and what hold() reported."""
        return self._entries.nbytes + self._held_bytes

    def parts(self) -> dict[str, int]:
        """Bytes by what holds them: "objects" and each part hold() was told of."""
        return {"objects": self._entries.nbytes, **self._held}

    def hold(self, part: str, nbytes: int) -> None:
        """part (e.g. "tree listings") now holds nbytes; objects are dropped to make room."""
        with self._lock:
            self._held_bytes += nbytes - self._held.get(part, 0)
            self._held[part] = nbytes
            self._entries.shrink(self.max_bytes - self._held_bytes)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, oid: bytes) -> bool:
        return oid in self._entries

    def get(self, oid: bytes):
        """The cached bytes, or None; counts as a use."""
        with self._lock:
            return self._entries.get(oid)

    def put(self, oid: bytes, data) -> None:
        size = len(data)
        if size > self.max_entry:
            return
        with self._lock:
            self._entries.put(oid, data, size)
            self._entries.shrink()  # the object itself too, if what the rest holds leaves no room

    def discard(self, oid: bytes) -> None:
        with self._lock:
            self._entries.pop(oid)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Loading:
    __slots__ = ("oid", "job", "index", "unclaimed", "waiters", "event", "finished", "data", "error", "pushing",
                 "waits")

    def __init__(self, oid: bytes, unclaimed):
        self.oid = oid
        self.job: Job | None = None
        self.index = -1  # its item in job's Push, if it is one
        self.unclaimed = unclaimed  # None for a load a reader asked for (or claimed)
        self.waiters = 0
        self.event: trio.Event | None = None
        self.finished = False
        self.data = None
        self.error: BaseException | None = None
        self.pushing = False  # a helper is pushing it: a READ of it would wait for that push
        self.waits: list = []  # the cancel scopes of readers waiting for it (hp.Pushing ends them)


class Loads:
    """The object loads in flight, one per id."""

    def __init__(self, pool, cache: ObjectCache, hedge_after: float = HEDGE_AFTER):
        self.pool = pool
        self.cache = cache
        self.hedge_after = hedge_after
        self.counts = collections.Counter()
        self._loading: dict[bytes, _Loading] = {}
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None

    def busy(self, oid: bytes) -> bool:
        """Cached or being loaded: nothing to start for it."""
        return oid in self._loading or oid in self.cache

    async def get(self, oid: bytes, where: hp.ReaderAt = hp.NOWHERE):
        """The object's bytes (cached, or loaded now), or None when it is too big to hold.
        From the trio loop; raises what the load raised. where: hp.ReaderAt, the place of the
        object in the listing its reader walks, when known (see hp.Load)."""
        data = self.cache.get(oid)
        if data is not None:
            return data
        if self._token is None:
            self._token = loop.token()
        with self._lock:
            loading = self._loading.get(oid)
            if loading is None:
                loading = self._load(oid, None, hp.URGENT, where=where)
            elif loading.unclaimed is not None:
                loading.unclaimed = None  # a reader claims it: deliver it here, not ahead
                self.pool.promote(loading.job, index=loading.index, where=where)
            if not loading.finished:
                loading.waiters += 1
                if loading.event is None:
                    loading.event = trio.Event()
        if not loading.finished:
            with trio.move_on_after(self.hedge_after) as scope:
                with self._lock:
                    pushing = loading.pushing
                    loading.waits.append(scope)
                if not pushing:
                    await loading.event.wait()
        if not loading.finished:
            await self._hedge(loading)
        if loading.error is not None:
            raise loading.error
        return loading.data

    async def _hedge(self, loading: _Loading) -> None:
        """A reader has waited long for a helper: the load is done here as well, and the first
        answer serves. Besides tail latency, this breaks the one wait cycle of the design: a
        helper pushing an object into the page cache waits for a page that this reader's READ
        holds locked, and so cannot answer the READ itself."""
        self.counts["hedged"] += 1
        header, payload = await trio.to_thread.run_sync(answers.load, self.pool.store, 0, -1, loading.oid,
                                                        self.cache.max_entry, -1)
        self._done(loading, header, payload)

    def ahead(self, oid: bytes, unclaimed, size: int = -1, where: hp.ReaderAt = hp.NOWHERE) -> bool:
        """Starts a read-ahead load of the object's bytes unless it is cached or loading; True if
        started. unclaimed(data) runs in a worker thread if no reader claimed it by then. size:
        the object's size if known (spares the helper a header read)."""
        with self._lock:
            if self.busy(oid):
                return False
            self._load(oid, unclaimed, hp.AHEAD, size, where)
        return True

    def ahead_here(self, items) -> int:
        """Starts read-ahead loads done in this process, by one worker thread for all of items
        ((oid, size, unclaimed)); those cached or loading are left out. Returns how many were
        started. For objects whose bytes a READ will want here: a helper would only add a pickle
        and a pipe copy for each, and the inflating runs without the GIL."""
        with self._lock:
            fresh = [item for item in items if not self.busy(item[0])]
            if not fresh:
                return 0
            loadings = []
            for oid, size, unclaimed in fresh:
                loading = self._loading[oid] = _Loading(oid, unclaimed)
                loadings.append((loading, size))
            job = Job(hp.AHEAD, local=lambda: self._load_here(loadings))
            for loading, _ in loadings:
                loading.job = job
            self.pool.submit(job)
        return len(fresh)

    def _load_here(self, loadings) -> None:
        """Worker thread: the loads of ahead_here, in order; one a hedge answered is skipped."""
        for loading, size in loadings:
            if not loading.finished:
                self._done(loading, *answers.load(self.pool.store, 0, -1, loading.oid, self.cache.max_entry, size))

    def push(self, items) -> int:
        """Starts read-ahead that helpers push into the page cache themselves: items are (oid,
        inode, size, where, unclaimed); those cached or loading are left out. An item a helper
        could not push comes back here, to unclaimed(data). Returns how many were started."""
        with self._lock:
            fresh = [item for item in items if not self.busy(item[0])]
            if not fresh:
                return 0
            loadings = []
            for k, (oid, _, _, _, unclaimed) in enumerate(fresh):
                loading = self._loading[oid] = _Loading(oid, unclaimed)
                loading.index = k
                loadings.append(loading)
            job = Job(hp.AHEAD, hp.Push(tuple(item[:4] for item in fresh), self.cache.max_entry),
                      lambda h, p: self._push_answer(loadings, h, p))
            for loading in loadings:
                loading.job = job
            self.pool.submit(job)
        return len(fresh)

    def _load(self, oid: bytes, unclaimed, lane: int, size: int = -1, where: hp.ReaderAt = hp.NOWHERE) -> _Loading:
        """Under the lock: a Load job for oid (a new loading, or one that needs its bytes again)."""
        loading = self._loading.get(oid) or _Loading(oid, unclaimed)
        self._loading[oid] = loading
        loading.index = -1
        loading.job = Job(lane, hp.Load(oid, self.cache.max_entry, size, where),
                          lambda h, p: self._done(loading, h, p))
        self.pool.submit(loading.job)
        return loading

    def _push_answer(self, loadings: list[_Loading], header, payload) -> None:
        """Worker thread: an answer to a Push, for one item (its bytes) or for all (PushDone)."""
        if type(header) is hp.Loaded:
            self._done(loadings[header.index], header, payload)
            return
        if type(header) is hp.Pushing:
            self._pushing(loadings[header.index])
            return
        for k in header.pushed:
            loading = loadings[k]
            with self._lock:
                if loading.finished or loading.index != k:
                    continue  # answered otherwise already (a hedge, or a reload)
                if loading.unclaimed is None:
                    # Pushed just before a reader claimed it: the reader's READ needs the bytes.
                    self._load(loading.oid, None, hp.URGENT)
                    continue
                if self._loading.get(loading.oid) is loading:
                    del self._loading[loading.oid]
                loading.finished = True
            self.counts["pushed"] += 1

    def _pushing(self, loading: _Loading) -> None:
        """Worker thread: a helper is pushing the object. A reader waiting for it now waits for
        the push, and the push for the page that reader's READ holds locked: each such wait
        ended only when the hedge did, after HEDGE_AFTER (15 of the 1,016 READs of a `grep -r`
        over .tree/v2.55.0 of git.git took 20.6 ms each). The waits end now, and those readers
        make the object themselves."""
        with self._lock:
            if loading.finished:
                return
            loading.pushing = True
            waits, loading.waits = loading.waits, []
        for scope in waits:
            loop.call_soon(self._token, scope.cancel)

    def _done(self, loading: _Loading, header: hp.Loaded, payload) -> None:
        """Worker thread (or a hedge): the object's bytes, or why not."""
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
            if loading.finished:
                return  # a hedge answered first
            if self._loading.get(loading.oid) is loading:
                del self._loading[loading.oid]
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
            loop.call_soon(self._token, loading.event.set)
