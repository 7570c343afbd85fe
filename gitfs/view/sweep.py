"""The kernel keeps the names, attributes and pages of objects for an hour (objects never change):
when the repository changed, some of those it holds may be gone. A sweep checks the objects it
may hold (those listed, and those looked up by name) and makes it forget the gone ones, so a
pruned object no longer passes `stat` either.
"""

from __future__ import annotations

from collections.abc import Callable

import odb

from gitfs.engine import helper_protocol as hp
from gitfs.engine import loop
from gitfs.view.inodes import bucket_inode
from gitfs.engine.workers import Job


class KernelSweep:
    """One sweep at a time, in the workers' lowest lane; a change seen meanwhile sweeps again
    after it. held() says what the kernel may hold: (bucket listings, (inode, id) pairs of the
    objects looked up by name)."""

    def __init__(self, store, pool, kernel_cache, held: Callable[[], tuple[list, list]], counts):
        self.store = store
        self.pool = pool
        self.kernel_cache = kernel_cache
        self._held = held
        self._counts = counts
        self._sweeping = self._wanted = False

    def wanted(self) -> None:
        """The loop: the repository changed (the store's generation moved)."""
        self._wanted = True
        self._start()

    def forget(self, bucket: int, oid: bytes, inode: int) -> None:
        """The kernel forgets an object found gone (any thread)."""
        self.kernel_cache.forget(bucket_inode(bucket), oid[1:].hex().encode(), inode)
        self._counts["forgotten"] += 1

    def _start(self) -> None:
        if self.kernel_cache is None or self._sweeping or not self._wanted:
            return
        self._sweeping, self._wanted = True, False
        token = loop.token()
        listings, recent = self._held()

        def sweep() -> None:
            try:
                self._forget_vanished(listings, recent)
            finally:
                loop.call_soon(token, self._done)
        self.pool.submit(Job(hp.AHEAD, local=sweep))

    def _done(self) -> None:
        self._sweeping = False
        self._start()

    def _forget_vanished(self, listings, recent) -> None:
        """Worker thread: the kernel forgets the entries of objects that are gone."""
        n = self.store.format.raw_len
        for listing in listings:
            try:
                block = self.store.bucket_ids(listing.bucket)
            except (odb.OdbError, OSError):
                continue
            now = {block[i : i + n] for i in range(0, len(block), n)}
            for k in range(listing.count):
                oid = listing.oid(k)
                if oid not in now:
                    self.forget(listing.bucket, oid, listing.inodes[k])
        for inode, oid in recent:
            try:
                self.store.read_size(oid)
            except odb.ObjectNotFound:
                self.forget(oid[0], oid, inode)
            except (odb.OdbError, OSError):
                pass
