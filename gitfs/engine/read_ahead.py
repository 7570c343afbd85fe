"""Read-ahead for a walk in listing order (grep -r, find -exec), with pushes into the page cache.

A reader that opens a bucket's objects in listing order gets the next ones inflated before it
asks, and their bytes pushed into the kernel's page cache (notify_store), so that reading them
sends no request at all. Without a request the mount cannot see how far the reader has got, so
every TRIPWIRE-th object is not pushed but kept in the object cache: the reader's READ for it is
answered at once and moves the window on. A walk that reaches the end of a bucket continues into
the next bucket's listing (taken ahead by the view): those objects are loaded ahead, but pushed
only once the kernel knows their inodes, after readdir has sent them.

Pushes go through gitfs/fuse/kernel_cache.py, on a thread of their own: notify_store may wait for a
page that a pending READ holds locked, and that READ may be waiting for the loop or a worker.
"""

from __future__ import annotations

import logging

from gitfs.engine import helper_protocol as hp
from gitfs.tuning import AHEAD_OBJECTS, AHEAD_BYTES, TRIPWIRE, NEAR, PUSH_BATCH
from gitfs.engine.workers import Job

log = logging.getLogger("gitfs")


class AheadState:
    __slots__ = ("last", "until", "unpushed")

    def __init__(self):
        self.last = -1  # the last entry a reader read
        self.until = 0  # entries before this one have been considered for read-ahead
        self.unpushed: set[int] = set()  # loaded before the kernel knew them; waiting in the cache


class ReadAhead:
    def __init__(self, loads, cache, pool, kernel_cache=None, walk=None):
        """kernel_cache: a gitfs.fuse.kernel_cache.KernelCache, or None to push nothing; walk: the
        gitfs.engine.pack_walk.PackOrderWalk that takes over a walk of the whole mount, or None."""
        self.walk = walk
        self.loads = loads
        self.cache = cache
        self.pool = pool
        self.kernel_cache = kernel_cache
        self.counts = {"ahead": 0}

    def after_read(self, listing, k: int, next_listing=None) -> None:
        """The loop: a reader has started reading entry k of listing."""
        if self.walk is not None and self.walk.covers(listing):
            return  # read in pack order (pack_walk.py)
        state = listing.ahead
        if state is None:
            state = listing.ahead = AheadState()
        previous, state.last = state.last, k
        # Only a walk in listing order is worth guessing ahead of; random readers would make
        # it inflate objects nobody reads. A tripwire or a walk that came from the previous
        # bucket counts as one.
        if previous < 0:
            walking = (k == 0 and state.until > 0) or (listing.walk_from_start and k == listing.first_file)
        else:
            walking = 0 < k - previous <= TRIPWIRE + 1
        if not walking or state.until >= k + 1 + AHEAD_OBJECTS:
            return
        budget = AHEAD_BYTES
        budget = self._schedule(listing, max(k + 1, state.until), k + 1 + AHEAD_OBJECTS, budget)
        stop = k + 1 + AHEAD_OBJECTS
        if stop > listing.count and next_listing is not None and self.walk is not None:
            self.walk.walked_through(listing)
        if stop > listing.count and next_listing is not None and budget > 0:
            nxt = next_listing.ahead = next_listing.ahead or AheadState()
            self._schedule(next_listing, nxt.until, stop - listing.count, budget)

    def looked_up(self, listing, k: int) -> None:
        """The loop: entry k was looked up. A lookup of a tree's first file is most often a walk
        about to read it (cat in path order): its bytes and the next ones are loaded now, before
        its READ comes, and the read-ahead window is then already open."""
        if not listing.walk_from_start or k != listing.first_file:
            return
        state = listing.ahead
        if state is None:
            state = listing.ahead = AheadState()
        if state.until <= k:
            self._schedule(listing, k, k + 1 + AHEAD_OBJECTS, AHEAD_BYTES)

    def _schedule(self, listing, start: int, stop: int, budget: int) -> int:
        state = listing.ahead
        stop = min(stop, listing.count, listing.filled)
        sizes, max_entry, readable = listing.sizes, self.cache.max_entry, listing.readable
        pushes, here = [], []
        k = start
        while k < stop:
            size = sizes[k]
            if 0 <= size <= max_entry and readable(k):  # a tree's subtrees and links are not read
                budget -= size
                if budget < 0:
                    break
                oid = listing.oid(k)
                if not self.loads.busy(oid):
                    unclaimed = self._unclaimed(listing, k, oid)
                    # Helpers push into the page cache themselves what the kernel knows already.
                    # Tripwires come back here, to be read, and so do the next few objects: a
                    # reader that catches up with a push holds the pages it would write.
                    if k < listing.replied and k % TRIPWIRE and k > state.last + NEAR:
                        pushes.append((oid, listing.inodes[k], size, hp.ReaderAt(listing.listing_id, k), unclaimed))
                    elif listing.loads_here:
                        here.append((oid, size, unclaimed))
                    elif self.loads.ahead(oid, unclaimed, size, hp.ReaderAt(listing.listing_id, k)):
                        self.counts["ahead"] += 1
            k += 1
        for i in range(0, len(pushes), PUSH_BATCH):
            self.counts["ahead"] += self.loads.push(pushes[i : i + PUSH_BATCH])
        # The first few come in small jobs: the reader wants them soonest, and a job is done
        # whole before its loads are answered.
        for i, j in zip([0, *range(NEAR, len(here), PUSH_BATCH)], [*range(NEAR, len(here), PUSH_BATCH), len(here)]):
            self.counts["ahead"] += self.loads.ahead_here(here[i:j]) if i < j else 0
        state.until = max(state.until, k)
        return budget

    def _unclaimed(self, listing, k: int, oid: bytes):
        def loaded(data) -> None:
            """Worker thread: the load finished and no reader waits for it."""
            if self.kernel_cache is None or k % TRIPWIRE == 0:
                self.cache.put(oid, data)
            elif k < listing.replied:
                if not self.kernel_cache.push(listing.inodes[k], oid, data):
                    self.cache.put(oid, data)
            else:
                self.cache.put(oid, data)
                listing.ahead.unpushed.add(k)
        return loaded

    def replied(self, listing, upto: int) -> None:
        """The loop: readdir has sent entries below upto, so the kernel knows their inodes."""
        listing.replied = max(listing.replied, upto)
        state = listing.ahead
        if state is None or not state.unpushed:
            return
        ready = [k for k in state.unpushed if k < upto]
        state.unpushed.difference_update(ready)
        jobs = [Job(hp.AHEAD, local=self._push_cached(listing.inodes[k], listing.oid(k))) for k in ready]
        self.pool.submit(*jobs)

    def _push_cached(self, inode: int, oid: bytes):
        def push() -> None:
            data = self.cache.get(oid)
            if data is not None and self.kernel_cache.push(inode, oid, data):
                self.cache.discard(oid)  # the kernel has it now (or gives it back if refused)
        return push
