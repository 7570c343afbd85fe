"""Directory snapshots: the root's buckets, and a bucket's ids with their inodes and sizes.

A listing is taken at opendir so that readdir offsets stay stable while one listing is read.
A bucket's listing holds its raw ids as one sorted block (hex is made only for the names readdir
sends), their inodes as one array, and their sizes as they are read: helpers fill them batch by
batch from worker threads while readdir replies with the batches already filled.
"""

from __future__ import annotations

import itertools
import struct
import threading
from array import array

import trio

from odb.pack.fanout import lower_bound

from gitfs.engine import loop
from gitfs.view.inodes import FIRST_OBJECT_INODE, MovedInodes
from gitfs.tuning import SIZE_BATCH

_listing_ids = itertools.count(1)
UNKNOWN = -1


class RootListing:
    __slots__ = ("buckets",)

    def __init__(self, buckets: list[int]):
        self.buckets = buckets


class Listing:
    """What every directory of objects holds: the entries' raw ids (one block), inodes, and sizes
    as the helpers read them. Read-ahead (gitfs/engine/read_ahead.py) follows any of them."""

    __slots__ = ("listing_id", "block", "raw_len", "count", "generation", "inodes", "sizes", "access", "errors",
                 "filled", "replied", "size_jobs", "ahead", "_done", "_lock", "_event", "_token", "_when_filled")

    def __init__(self, block: bytes, raw_len: int, generation: int, inodes, count: int | None = None):
        """inodes: an array, or anything indexable by position; count: the entries, when block
        does not hold their ids (a subclass then gives them by oid() and ids())."""
        self.listing_id = next(_listing_ids)  # names the listing to the helpers (hp.ReaderAt)
        self.block = block
        self.raw_len = raw_len
        self.count = len(block) // raw_len if count is None else count
        self.generation = generation  # the store's generation when listed
        self.inodes = inodes
        self.sizes = array("q", [UNKNOWN]) * self.count
        self.access = array("H", [0]) * self.count  # which of the view's Access values applies
        self.errors: dict[int, Exception] = {}  # index -> why its size could not be read
        self.filled = 0  # sizes known so far, from the front
        self.replied = 0  # entries sent to the kernel so far: it knows their inodes
        self.size_jobs: list | None = None  # the jobs reading sizes, once asked for
        self.ahead = None  # read-ahead state (gitfs/engine/read_ahead.py)
        self._done: dict[int, int] = {}  # start -> stop of batches filled out of order
        self._lock = threading.Lock()
        self._event: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._when_filled: list | None = None  # callbacks for when every size is known

    walk_from_start = False  # whether a first read at the first file means a walk (trees)
    loads_here = False  # whether read-ahead the kernel cannot take yet is loaded in this process

    def oid(self, k: int) -> bytes:
        n = self.raw_len
        return self.block[k * n : (k + 1) * n]

    def ids(self, start: int, stop: int) -> bytes:
        """The raw ids of entries start..stop, one after the other."""
        n = self.raw_len
        return self.block[start * n : stop * n]

    def readable(self, k: int) -> bool:
        """Whether entry k is a file whose bytes a reader reads (read-ahead's candidates)."""
        return True

    # -- sizes, filled from worker threads ------------------------------------------------

    def batches(self) -> list[tuple[int, int]]:
        return [(i, min(i + SIZE_BATCH, self.count)) for i in range(0, self.count, SIZE_BATCH)]

    def fill(self, start: int, sizes: array, errors: dict, access: array) -> None:
        """Worker thread: the sizes (and Access indexes) of entries start.. are known."""
        stop = start + len(sizes)
        self.sizes[start:stop] = sizes
        self.access[start:stop] = access
        for k, error in errors.items():
            self.errors[start + k] = error
        with self._lock:
            # Batches finish out of order; filled covers only those before any gap.
            self._done[start] = stop
            while self.filled in self._done:
                self.filled = self._done.pop(self.filled)
            event, self._event = self._event, None
            ready = None
            if self.filled >= self.count and self._when_filled:
                ready, self._when_filled = self._when_filled, None
        for callback in ready or ():  # before the loop hears of it: a readdir then finds them started
            callback()
        if event is not None:
            loop.call_soon(self._token, event.set)

    async def wait_filled(self, i: int) -> None:
        """Returns once the size of entry i is known (the trio loop)."""
        while self.filled <= i:
            with self._lock:
                if self.filled > i:
                    return
                if self._event is None:
                    self._event = trio.Event()
                    self._token = loop.token()
                event = self._event
            await event.wait()

    def when_filled(self, callback) -> None:
        """callback() once every size is known: now if they are, else in the thread that fills
        the last of them."""
        with self._lock:
            if self.filled < self.count:
                self._when_filled = (self._when_filled or []) + [callback]
                return
        callback()

    @property
    def nbytes(self) -> int:
        """Roughly what the listing holds in memory."""
        return len(self.block) + 18 * self.count


class BucketListing(Listing):
    __slots__ = ("bucket",)

    def __init__(self, bucket: int, block: bytes, raw_len: int, generation: int, moved: MovedInodes):
        super().__init__(block, raw_len, generation, _natural_inodes(block, raw_len))
        self.bucket = bucket
        inodes = self.inodes
        if inodes and (inodes[0] < FIRST_OBJECT_INODE or moved or len(set(inodes)) != len(inodes)):
            _apply_moves(self, moved)

    def names(self, start: int, stop: int) -> bytes:
        """Hex of entries start..stop, each 2 * raw_len digits (the name is all but the first 2)."""
        n = self.raw_len
        return self.block[start * n : stop * n].hex().encode()

    def index_of(self, oid: bytes) -> int | None:
        """The position of oid, by bisection of the block."""
        k = self._lower_bound(oid)
        return k if k < self.count and self.oid(k) == oid else None

    def index_of_inode(self, inode: int) -> int | None:
        """The position of the id whose natural inode this is (it starts with inode_prefix)."""
        k = self._lower_bound((inode << 1).to_bytes(8, "big"))
        for j in (k, k + 1):
            if j < self.count and self.inodes[j] == inode:
                return j
        return None

    def _lower_bound(self, key: bytes) -> int:
        return lower_bound(self.block, 0, self.raw_len, 0, self.count, key)

_PREFIXES = {n: struct.Struct(f">Q{n - 8}x") for n in (20, 32)}


def _natural_inodes(block: bytes, raw_len: int) -> array:
    """Each id's natural inode, the top 63 bits, unpacked in C."""
    prefix = _PREFIXES.get(raw_len) or struct.Struct(f">Q{raw_len - 8}x")
    return array("Q", [v >> 1 for (v,) in prefix.iter_unpack(block)])


def _apply_moves(listing: "BucketListing", moved: MovedInodes) -> None:
    """Ids sharing their natural inode (neighbours, since ids are sorted) or falling in the
    reserved range get moved inodes, as do ids moved in an earlier listing."""
    inodes = listing.inodes
    natural = list(inodes)
    count = len(natural)
    oid = listing.oid
    for k in range(count):
        # An id listed twice is not a collision, and must not retire the inode the kernel was
        # given. odb lists each id once, but takes an index's order on trust, as git does: a
        # damaged .idx or multi-pack-index may repeat an id.
        shared = ((k > 0 and natural[k] == natural[k - 1] and oid(k) != oid(k - 1))
                  or (k + 1 < count and natural[k] == natural[k + 1] and oid(k) != oid(k + 1)))
        if shared or natural[k] < FIRST_OBJECT_INODE:
            inodes[k] = moved.move(oid(k))
    for oid in moved.ids_in_bucket(listing.bucket):
        k = listing.index_of(oid)
        if k is not None:
            inodes[k] = moved.inode_for(oid)
