"""A walk of the whole mount (grep -r, tar, rsync, rg) served in pack order, window by window.

A walker reads the buckets in id order. Made in that order, most deltas' bases have long left the
delta-base cache and their chains are made again: odb reads all of git.git in 29 s in id order and
in 6.7 s in pack order. So once a walk has read a few buckets whole, in order, and goes on, a thread
of this process takes the next buckets (a window) and:

1. lists them through the mount, as any reader would, so that the kernel knows their inodes (it
   refuses a push for an inode it does not know);
2. reads their objects in pack order (Store.pack_order) and pushes each into the page cache: the
   walker then reads it without a request.

The walker's READ of an object the pass has not reached yet waits for it (at most WAIT_MAX): served
at once, in id order, it would cost the pass the CPU it saves. The pass hands such an object to the
waiting READ through the object cache instead of pushing it, since a push waits for the page that
the pending READ holds. An object is marked passed before it is read, and a READ of a passed object
never waits, so nothing the pass waits for waits for the pass.

The first window comes after PACK_WALK_AFTER buckets walked (fewer gain nothing from pack order),
and windows grow fourfold from PACK_WALK_FIRST buckets while the walker keeps up (it opens a bucket
in the second half of the latest one), so a walk that stops soon had few read ahead of it. A window
never holds more than half of the memory available, since the pages it pushes stay in the page
cache until the walker reads them. Read-ahead (read_ahead.py) leaves the buckets of a window alone.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from array import array

import trio

import odb

from gitfs.engine import loop, memory
from gitfs.tuning import (PACK_WALK_AFTER, PACK_WALK_FIRST, PACK_WALK_GROWTH, PACK_WALK_MEMORY, PACK_WALK_MIN_OBJECTS,
                          PACK_WALK_SURE, PACK_WALK_THREADS, PUSH_CHUNK, WAIT_MAX)

log = logging.getLogger("gitfs")


class Window:
    """Buckets lo..hi-1, once listed: their listings, which entries the pass has taken (passed),
    and the READs waiting for an entry (waiters, (bucket, k) -> trio.Event)."""

    __slots__ = ("lo", "hi", "listings", "passed", "waiters", "done", "order", "starts", "buckets", "listed",
                 "began", "seen")

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.listings: dict = {}
        self.passed: dict[int, bytearray] = {}
        self.waiters: dict[tuple[int, int], trio.Event] = {}
        self.done = False
        # Once listed: the pack order of the entries (positions in the concatenation of the
        # buckets' listings), where each bucket's entries start in it, and those buckets.
        self.order = array("l")
        self.starts: list[int] = []
        self.buckets: list[int] = []
        self.listed = threading.Event()
        self.began = time.monotonic()
        self.seen = False  # whether a reader other than the pass opened one of its buckets


class PackOrderWalk:
    """The loop tells it what the walker does (walked_through, entered, wait); its threads list,
    order, read and push the windows."""

    def __init__(self, store, cache, kernel, mountpoint: str | None, listing_of, counts):
        """kernel: push(inode, offset, data), or None (nothing is pushed, and no walk is served);
        listing_of(bucket): the latest listing of a bucket (the one its READs name)."""
        self.store = store
        self.cache = cache
        self.kernel = kernel
        self.mountpoint = mountpoint
        self.listing_of = listing_of
        self.counts = counts
        self._lock = threading.Lock()
        self._queue: list[Window] = []  # windows asked for, not yet begun
        self._windows: list[Window] = []  # begun (listed): read-ahead leaves their buckets alone
        self._latest: Window | None = None  # the last window asked for
        self._next: Window | None = None  # the one after it, listed ahead
        self._walker = (-1, -1)  # the furthest (bucket, entry) a READ waited at
        self._walked = (-2, 0)  # the last bucket a walk read to its end, and how many before it in a row
        self._read: dict[int, list] = {}  # bucket -> [entries READ at offset 0, a mark per entry]
        self._unordered = False  # whether the pass serves a walk in no order (read_at)
        self._thread: threading.Thread | None = None
        self._own: set[int] = set()  # the threads that list windows: their opendirs are not the walker's
        self._token = None
        self._stopped = False

    @property
    def enabled(self) -> bool:
        return self.kernel is not None and self.mountpoint is not None

    # -- the loop: what the walker does --------------------------------------------------------

    def walked_through(self, listing) -> None:
        """A walk read the bucket of listing to its end, in order, and goes on. Once it has read
        PACK_WALK_AFTER buckets so, each after the one before, the next ones are read in pack order."""
        b = listing.bucket
        if not self.enabled or listing.count < PACK_WALK_MIN_OBJECTS or self._covering(b + 1) is not None:
            return
        last, run = self._walked
        if b == last:
            return
        self._walked = (b, run + 1 if b > last else 1)  # (empty buckets are not walked through)
        if self._walked[1] < PACK_WALK_AFTER:
            return
        latest = self._latest
        if latest is not None and latest.lo <= b + 1 < latest.hi:
            return
        self._ask(self._window(b + 1, PACK_WALK_FIRST, _bytes_of(listing)))

    def entered(self, bucket: int, tid: int) -> None:
        """Thread tid opened bucket's directory. A walker in the latest window is seen there
        (its next window is then listed ahead, once the pass is half way through it); one in
        its second half has kept up, and the next window is asked for."""
        latest = self._latest
        if latest is None or tid in self._own or not latest.lo <= bucket < latest.hi:
            return
        latest.seen = True
        if bucket >= latest.lo + (latest.hi - latest.lo) // 2:
            self._ask(self._following(latest))

    def root_listed(self, tid: int) -> None:
        """Thread tid lists the root: a new walk may begin. Once every window of the last one is
        read, what it left goes, so that a walk after it (the kernel let its pages go, or the
        repository changed) is served as the first was, with read-ahead until its own pass."""
        if not self._windows or tid in self._own:
            return
        with self._lock:
            if self._thread is not None or self._queue or not all(w.done for w in self._windows):
                return
            self._windows = []
        self._latest = self._next = None
        self._walker, self._walked, self._read, self._unordered = (-1, -1), (-2, 0), {}, False

    def covers(self, listing) -> bool:
        """Whether read-ahead should leave listing alone: a pass has read, or is reading, its bucket."""
        return self._windows != [] and self._covering(getattr(listing, "bucket", -1)) is not None

    def read_at(self, listing, k: int) -> None:
        """A READ at offset 0 of entry k of listing (no READ comes for what was pushed). A bucket
        half of whose entries were read so is walked, in whatever order: ripgrep's threads take a
        directory's entries last first. Once PACK_WALK_AFTER buckets are walked so, every bucket
        not yet walked is read in pack order, as many as the memory allows (an unordered walk),
        and every READ of an object the pass has not reached waits for it."""
        b = getattr(listing, "bucket", None)
        if b is None or self._latest is not None or not self.enabled or listing.count < PACK_WALK_MIN_OBJECTS:
            return  # (a walk is served already)
        seen = self._read.get(b)
        if seen is None or len(seen[1]) != listing.count:
            seen = self._read[b] = [0, bytearray(listing.count)]
        if k >= len(seen[1]) or seen[1][k]:
            return
        seen[1][k] = 1
        seen[0] += 1
        if seen[0] == (listing.count + 1) // 2:  # the bucket is walked, just now
            walked = sum(1 for n, marks in self._read.values() if n * 2 >= len(marks))
            if walked >= PACK_WALK_AFTER:
                self._unordered = True
                self._ask(self._window(0, 256, _bytes_of(listing)))

    async def wait(self, oid: bytes, listing, k: int) -> None:
        """A READ at offset 0 of entry k of listing: if the pass will come to it, wait for it (at
        most WAIT_MAX), unless the reader is behind the walker (a reader of its own; in an
        unordered walk, every reader waits)."""
        window = self._covering(getattr(listing, "bucket", -1)) if self._windows else None
        if window is None or window.done:
            return
        b = listing.bucket
        with self._lock:
            passed = window.passed.get(b)
            if passed is None or k >= len(passed) or passed[k] or window.listings[b].oid(k) != oid:
                return
            if (b, k) < self._walker and not self._unordered:
                return
            self._walker = (b, k)
            event = window.waiters.get((b, k))
            if event is None:
                event = window.waiters[(b, k)] = trio.Event()
        self.counts["walk waits"] += 1
        with trio.move_on_after(WAIT_MAX) as scope:
            await event.wait()
        if scope.cancelled_caught:
            self.counts["walk waits given up"] += 1

    def close(self) -> None:
        """The mount is going away: the pass stops at its next object, and no READ waits."""
        self._stopped = True
        with self._lock:
            self._queue.clear()

    # -- asking for windows --------------------------------------------------------------------

    def _covering(self, bucket: int) -> Window | None:
        for window in self._windows:
            if window.lo <= bucket < window.hi:
                return window
        return None

    def _window(self, lo: int, width: int, bucket_bytes: int) -> Window | None:
        """The loop: a window of buckets lo.., as many as width and the memory available allow,
        listed from now on (its own thread); None past the last bucket."""
        budget = _available_memory() * PACK_WALK_MEMORY
        width = max(1, min(width, int(budget // max(bucket_bytes, 1))))
        hi = min(256, lo + width)
        if lo >= hi or self._stopped:
            return None
        self._token = self._token or loop.token()
        window = Window(lo, hi)
        threading.Thread(target=self._list, args=(window,), name="gitfs-pack-walk-list", daemon=True).start()
        return window

    def _following(self, window: Window) -> Window | None:
        """The loop: the window after window, PACK_WALK_GROWTH times as wide (listed ahead, or now)."""
        following, self._next = self._next, None
        if following is not None and following.lo == window.hi:
            return following
        listing = self.listing_of(window.lo)
        return self._window(window.hi, PACK_WALK_GROWTH * (window.hi - window.lo),
                            _bytes_of(listing) if listing is not None else 0)

    def _list_next(self, window: Window) -> None:
        """The loop: the pass is half way through window, where a walker was seen: the next
        window is listed now, so that reading it can start as soon as this one is done. (A
        walker gets to the second half of a window only when the pass is nearly through it.)"""
        if self._latest is window and self._next is None and not self._stopped:
            self._next = self._following(window)

    def _went_through(self, window: Window) -> None:
        """The loop: the pass read a window as wide as PACK_WALK_SURE, where a walker was seen:
        such a walker goes on, and the next window is read without waiting for it to get half
        way through this one (which takes it seconds more, reading what the pass pushed)."""
        if self._latest is window:
            self._ask(self._following(window))

    def _ask(self, window: Window | None) -> None:
        """The loop: window is to be read in pack order, after those asked before."""
        if window is None:
            return
        self._latest = window
        self.counts["walk windows"] += 1
        with self._lock:
            self._queue.append(window)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gitfs-pack-walk", daemon=True)
                self._thread.start()

    # -- the pass's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._stopped:
                    self._thread = None
                    return
                window = self._queue.pop(0)
            try:
                self._pass(window)
            except Exception:
                log.exception("reading buckets %02x-%02x in pack order failed", window.lo, window.hi - 1)
            finally:
                self._finish(window)

    def _pass(self, window: Window) -> None:
        window.listed.wait()
        order, starts, buckets = window.order, window.starts, window.buckets
        if self._stopped or not buckets:
            return
        with self._lock:
            self._windows.append(window)
        listed = time.monotonic()
        # The threads take the entries in turn, so that they go through each pack side by side
        # and share the delta bases the engine keeps (for every thread of the process).
        others = [threading.Thread(target=self._take_each, args=(window, order[i::PACK_WALK_THREADS], starts, buckets),
                                   name="gitfs-pack-walk", daemon=True) for i in range(1, PACK_WALK_THREADS)]
        for thread in others:
            thread.start()
        mine = order[::PACK_WALK_THREADS]
        half = len(mine) // 2
        self._take_each(window, mine[:half], starts, buckets)
        if window.seen:
            loop.call_soon(self._token, self._list_next, window)
        self._take_each(window, mine[half:], starts, buckets)
        if (window.seen or self._unordered) and window.hi - window.lo >= PACK_WALK_SURE:
            loop.call_soon(self._token, self._went_through, window)
        for thread in others:
            thread.join()
        # The next window is read in pack order from the start of the packs again: this one's
        # delta bases are of no use to it, and were a third of the mount's RSS after a walk.
        self.store.release_memory()
        memory.give_back()
        log.info("read buckets %02x-%02x in pack order: %d objects, listed in %.2f s, read and pushed in %.2f s",
                 window.lo, window.hi - 1, len(order), listed - window.began, time.monotonic() - listed)

    def _take_each(self, window: Window, order, starts: list[int], buckets: list[int]) -> None:
        listings = window.listings
        for g in order:
            if self._stopped:
                return
            j = bisect.bisect_right(starts, g) - 1
            b = buckets[j]
            self._take(window, listings[b], b, g - starts[j])

    def _list(self, window: Window) -> None:
        """Its own thread: lists the window's buckets through the mount, and puts their entries
        in pack order (window.order)."""
        self._own.add(threading.get_native_id())
        try:
            self._list_buckets(window)
        except Exception:
            log.exception("listing buckets %02x-%02x to read them in pack order failed", window.lo, window.hi - 1)
            window.buckets = []
        finally:
            self._own.discard(threading.get_native_id())
            window.listed.set()

    def _list_buckets(self, window: Window) -> None:
        starts, buckets, blocks, at = [], [], [], 0
        for b in range(window.lo, window.hi):
            if self._stopped:
                break
            read = self._read.get(b)
            if self._unordered and read is not None and read[0] * 2 >= len(read[1]):
                continue  # walked already
            try:
                os.listdir(os.path.join(self.mountpoint, f"{b:02x}"))
            except OSError:
                continue  # an empty bucket, or the mount is going away
            listing = self.listing_of(b)
            if listing is None or listing.replied < listing.count:
                continue  # (another listing replaced it meanwhile: its READs come as they come)
            window.listings[b] = listing
            window.passed[b] = bytearray(listing.count)
            starts.append(at)
            buckets.append(b)
            blocks.append(listing.ids(0, listing.count))
            at += listing.count
        window.order = self.store.pack_order(b"".join(blocks))
        window.starts, window.buckets = starts, buckets

    def _take(self, window: Window, listing, b: int, k: int) -> None:
        """The pass comes to entry k of bucket b: it is read, and pushed, or handed to a READ
        that waits for it."""
        with self._lock:
            window.passed[b][k] = 1
            waiting = window.waiters.pop((b, k), None)
        size = listing.sizes[k]
        data = None
        if 0 <= size <= self.cache.max_entry:  # bigger ones are streamed to their readers
            oid = listing.oid(k)
            try:
                data = self.store.read(oid)[1]
            except (odb.OdbError, OSError):
                data = None  # the READ's own load says what is wrong
            if data is not None and waiting is not None:
                self.cache.put(oid, data)
                self._count("walk handed")
            elif data is not None:
                self._push(listing.inodes[k], data)
        if waiting is not None:
            loop.call_soon(self._token, waiting.set)

    def _push(self, inode: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            for offset in range(0, len(data), PUSH_CHUNK):
                if self._stopped:
                    return  # the session may be gone: no call into it any more
                self.kernel.push(inode, offset, view[offset : offset + PUSH_CHUNK])
        except OSError:
            self._count("walk refused")  # the kernel let the inode go: a READ will ask
        else:
            self._count("walk pushed")

    def _count(self, what: str) -> None:
        with self._lock:  # two threads count at once: += on a Counter is no single step
            self.counts[what] += 1

    def _finish(self, window: Window) -> None:
        with self._lock:
            window.done = True
            waiting, window.waiters = list(window.waiters.values()), {}
        for event in waiting:
            loop.call_soon(self._token, event.set)


def _bytes_of(listing) -> int:
    """The bytes of a listing's objects (those whose sizes are known)."""
    return sum(s for s in listing.sizes if s > 0)


def _available_memory() -> int:
    """MemAvailable of /proc/meminfo, in bytes (0 when it cannot be read: windows of one bucket)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0

