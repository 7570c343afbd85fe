"""Trees read ahead of their listings: when a .tree directory is listed, its subtrees (and theirs,
breadth first) are parsed and their entries' sizes read in a worker, so that `ls -lR`, `find`
and `grep -r` of a revision find each directory's listing ready when they open it.

Bounded by count and bytes (PREPARED_KEPT, PREPARED_BYTES, counted in the cache's bound); a
listing that finds its tree still being read waits PREPARED_WAIT at most, then reads it itself.
"""

from __future__ import annotations

import collections
import logging
import threading

import trio

import odb
from odb.lru import LRU
from odb.objects.tree import TREE

from gitfs.engine import helper_protocol as hp
from gitfs.engine import loop
from gitfs.namespaces.tree_view import PreparedTree
from gitfs.tuning import PREPARE_AHEAD, PREPARE_TREES, PREPARED_BYTES, PREPARED_ENTRIES, PREPARED_KEPT, PREPARED_WAIT
from gitfs.engine.workers import Job

log = logging.getLogger("gitfs")


class SubtreesAhead:
    def __init__(self, trees, sizes, store, pool, limit: int):
        """trees: the TreeView that parses; sizes: the view's ListingSizes; limit: the cache's
        bound, of which this takes a sixteenth at most."""
        self.trees, self.sizes, self.store, self.pool = trees, sizes, store, pool
        self._prepared: LRU[bytes, PreparedTree | None] = LRU(  # None: being read
            max_items=PREPARED_KEPT, max_bytes=min(PREPARED_BYTES, limit // 16),
            weigh=lambda prepared: 0 if prepared is None else prepared.nbytes)
        self._lock = threading.Lock()
        self._waits: dict[bytes, trio.Event] = {}  # the loop's only
        self._token: trio.lowlevel.TrioToken | None = None
        self.counts = collections.Counter()  # tree listings: read ahead, waited for, read on their own

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._prepared.nbytes

    async def take(self, tree: bytes) -> PreparedTree | None:
        """The loop: the tree read ahead for the current generation (waiting a little while it
        is being read), or None: the listing reads it itself."""
        with self._lock:
            being_read = tree in self._prepared and self._prepared.peek(tree) is None
        if being_read:
            self.counts["waited for"] += 1
            event = self._waits.setdefault(tree, trio.Event())
            with trio.move_on_after(PREPARED_WAIT):
                await event.wait()
        with self._lock:
            prepared = self._prepared.pop(tree)
        if prepared is not None and prepared.generation == self.store.generation:
            self.counts["read ahead"] += 1
            return prepared
        self.counts["read on their own"] += 1
        return None

    def after_listing(self, listing) -> None:
        """The loop: the subtrees of a directory just listed are read ahead (see PREPARE_AHEAD),
        once the listing's own sizes are in. Their reading holds the GIL for much of its time,
        and the loop needs it to answer the listing's readdir: started at once, it took the first
        `ls -l` of .tree/v2.55.0 of git.git from 12-13 ms to 36-46 ms."""
        self._token = loop.token()
        listing.when_filled(lambda: self._start(listing.tree))

    def _start(self, tree: odb.Tree) -> None:
        """The loop, or the worker thread that filled the listing's last sizes: claims the
        subtrees (a listing opened before this reads its own) and reads them in a worker."""
        wanted = self._claim(tree, PREPARE_AHEAD)
        if wanted:
            self.pool.submit(Job(hp.AHEAD, local=lambda: self._prepare(wanted)))

    def _prepare(self, trees: list[bytes]) -> None:
        """Worker thread: PreparedTree of each tree, then of their subtrees, breadth first, up to
        PREPARE_TREES in all (a damaged one is left to its listing, which reports it)."""
        queue = collections.deque(trees)
        budget = PREPARE_TREES - len(trees)
        while queue:
            oid = queue.popleft()
            prepared = None
            try:
                generation = self.store.generation
                tree = self.trees.tree(oid)
                if len(tree) <= PREPARED_ENTRIES:
                    prepared = PreparedTree(tree, *self.sizes.of(tree.ids(0, len(tree))), generation)
            except (odb.OdbError, OSError) as e:
                log.debug("tree %s not read ahead: %s", oid.hex(), e)
            if prepared is not None and budget > 0:
                more = self._claim(prepared.tree, budget)
                queue.extend(more)
                budget -= len(more)
            self._done(oid, prepared)

    def _claim(self, tree, limit: int) -> list[bytes]:
        """Subtrees of tree that nothing reads ahead yet, at most limit, marked as being read
        (from the loop for a directory just listed, from a worker for their subtrees)."""
        modes, k, claimed = tree.modes(), -1, []
        with self._lock:
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

    def _done(self, oid: bytes, prepared: PreparedTree | None) -> None:
        """Worker thread: a tree read ahead is in (or failed); a listing waiting for it goes on."""
        with self._lock:
            if prepared is None:
                self._prepared.pop(oid, None)
            elif oid in self._prepared:  # not taken by a listing meanwhile
                self._prepared.put(oid, prepared)
        if oid in self._waits:  # a listing waits (a late one waits PREPARED_WAIT at most)
            loop.call_soon(self._token, self._ready, oid)

    def _ready(self, oid: bytes) -> None:
        event = self._waits.pop(oid, None)
        if event is not None:
            event.set()
