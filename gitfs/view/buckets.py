"""The buckets: which of 00..ff hold objects, a bucket's snapshot of ids, and the latest listing of
each bucket, which read-ahead and inode lookups follow.

Re-reading a directory refreshes the view: each opendir of a bucket takes a fresh snapshot after
one refresh of that bucket. A walk in order (`grep -r`, `find`) opens the buckets one after the
other, so each opendir also lists the next bucket ahead and asks its sizes at low priority; that
speculative listing is the next opendir's snapshot when its refresh saw no change.
"""

from __future__ import annotations

from odb.lru import LRU

from gitfs.engine import helper_protocol as hp
from gitfs.view.listings import BucketListing


class BucketListings:
    def __init__(self, store, sizes, moved, in_thread, *, max_bytes: int, hold):
        """sizes: the ListingSizes that fills listings; moved: the MovedInodes listings apply;
        in_thread(fn, *args): the view's way to run store work in a thread; hold(nbytes): what
        the listings kept weigh, counted against the cache's budget."""
        self.store = store
        self.sizes = sizes
        self.moved = moved
        self._in_thread = in_thread
        self._hold = hold
        self.raw_len = store.format.raw_len
        self.present: set[int] | None = None  # the buckets of the last root listing
        self._nonempty: set[int] | None = None  # the buckets found to hold objects by lookups
        # The latest listing of each bucket, in order of listing, bounded by bytes.
        self.latest: LRU[int, BucketListing] = LRU(max_bytes=max_bytes, weigh=lambda listing: listing.nbytes)
        self.speculative: BucketListing | None = None  # the next bucket, listed ahead

    def root_listed(self, buckets: list[int]) -> None:
        self.present = set(buckets)

    async def exists(self, bucket: int) -> bool:
        """Whether the bucket holds objects: as the last root listing said, or, for one that was
        empty then (it may hold a new pack's objects), after a refresh, as for any miss.

        Before any root listing, the first bucket looked up takes the store's nonempty buckets
        as one: a reader of random paths looks up every bucket, and asking the store about each
        (a refresh and the bucket's ids, in a thread) cost 0.3-0.6 ms a bucket."""
        if self.present is not None and bucket in self.present:
            return True
        if self._nonempty is None:
            self._nonempty = set(await self._in_thread(self.store.nonempty_buckets))
        if bucket in self._nonempty:
            return True
        if not await self._in_thread(self.store.bucket_has_objects, bucket):
            return False
        self._nonempty.add(bucket)
        if self.present is not None:
            self.present.add(bucket)
        return True

    async def list(self, bucket: int) -> BucketListing:
        """A fresh snapshot of the bucket, and the next bucket listed ahead for a walk in order.

        The speculative listing of this bucket, taken at the previous opendir, is the snapshot
        when the refresh at this opendir saw no change.
        """
        store = self.store
        spec, self.speculative = self.speculative, None
        if spec is not None and (spec.bucket != bucket or spec.generation != store.generation):
            spec = None
        after = self._next(bucket)
        generation = store.generation
        block, next_block = await self._in_thread(self._snapshot, bucket, spec is None, after)
        changed = store.generation != generation
        if block is None and changed:
            block = await self._in_thread(store.bucket_ids, bucket)
        if block is None:
            listing = spec
        else:
            listing = BucketListing(bucket, block, self.raw_len, store.generation, self.moved)
        self.sizes.ask(listing, hp.SIZES)  # promotes what was read ahead at low priority
        self._keep(listing)
        if next_block is not None and not changed:
            self.speculative = BucketListing(after, next_block, self.raw_len, store.generation, self.moved)
            self.sizes.ask(self.speculative, hp.AHEAD)
        return listing

    def _snapshot(self, bucket: int, need_ids: bool, after: int | None):
        """Thread: (the bucket's ids if they changed or are needed, the next bucket's ids)."""
        generation = self.store.generation
        self.store.refresh(bucket)
        changed = self.store.generation != generation
        block = self.store.bucket_ids(bucket) if changed or need_ids else None
        next_block = self.store.bucket_ids(after) if after is not None else None
        return block, next_block

    def _next(self, bucket: int) -> int | None:
        if self.present is None:
            return None
        return next((b for b in range(bucket + 1, 256) if b in self.present), None)

    def _keep(self, listing: BucketListing) -> None:
        self.latest.put(listing.bucket, listing)
        self._hold(self.latest.nbytes)

    def held(self) -> list[BucketListing]:
        """The listings kept: the kernel may hold their entries."""
        return [listing for _, listing in self.latest.items()]

    def position(self, oid: bytes) -> tuple[BucketListing | None, int]:
        """Where oid is in the latest listing of its bucket: what read-ahead follows."""
        listing = self.latest.peek(oid[0])
        if listing is not None:
            k = listing.index_of(oid)
            if k is not None:
                return listing, k
        return None, -1

    def following(self, listing) -> BucketListing | None:
        """The next bucket's speculative listing if it follows listing (a bucket's): where
        read-ahead may go on once listing is read to its end."""
        spec = self.speculative
        if type(listing) is BucketListing and spec is not None and spec.bucket > listing.bucket:
            return spec
        return None
