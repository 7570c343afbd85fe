"""The sizes of a listing's entries, with the Access of each: what `ls -l` and `find` wait for.

Bucket and tree listings alike: a listing's sizes are asked of the worker pool in batches (the
helpers read them many at once), or, for a small listing, read in this process. The answers fill
the listing as they come (Listing.fill), and readdir sends each entry once its size is known.
"""

from __future__ import annotations

import logging
from array import array

import odb

from gitfs.engine import answers
from gitfs.engine import helper_protocol as hp
from gitfs.engine.workers import Job

log = logging.getLogger("gitfs")


class ListingSizes:
    def __init__(self, store, pool, access_id):
        """access_id(access) -> the small number of an odb.Access (MountView.access_id)."""
        self.store = store
        self.pool = pool
        self.access_id = access_id
        self.raw_len = store.format.raw_len

    def ask(self, listing, lane: int) -> None:
        """The loop: the workers are asked for the listing's sizes in batches, in lane (asked
        already: promoted to the SIZES lane, when a reader now waits for them)."""
        if listing.size_jobs is not None:
            if lane == hp.SIZES:
                for job in listing.size_jobs:
                    self.pool.promote(job, hp.SIZES)
            return
        jobs = listing.size_jobs = []
        for start, stop in listing.batches():
            jobs.append(Job(lane, hp.Sizes(listing.ids(start, stop)), self._answered(listing, start)))
        self.pool.submit(*jobs)

    def fill(self, listing) -> None:
        """Thread: a small listing's sizes, read in this process rather than by the helpers
        (ask then has nothing left to ask)."""
        listing.size_jobs = []
        listing.fill(0, *self.of(listing.ids(0, listing.count)))

    def of(self, block: bytes) -> tuple[array, dict, array]:
        """Thread: (sizes, errors by index, Access index of each) of the ids in block."""
        sizes, errors, accesses, which = answers.sizes_and_accesses(self.store, block)
        ids = [self.access_id(a) for a in accesses]
        n = self.raw_len
        for k, error in errors.items():
            log.log(_level(error), "listing %s: %s", block[k * n : (k + 1) * n].hex(), error)
        return sizes, errors, array("H", [ids[a] if a < len(ids) else 0 for a in which])

    def _answered(self, listing, start: int):
        def done(header: hp.SizesRead, payload) -> None:
            count = len(payload) // 10  # an int64 size and a uint16 Access index per entry
            sizes, access = array("q"), array("H")
            sizes.frombytes(payload[: 8 * count])
            access.frombytes(payload[8 * count :])
            ids = [self.access_id(a) for a in header.accesses]
            if ids != list(range(len(ids))):
                access = array("H", [ids[a] if a < len(ids) else 0 for a in access])
            for k, error in header.errors.items():
                log.log(_level(error), "listing %s: %s", listing.oid(start + k).hex(), error)
            listing.fill(start, sizes, header.errors, access)
            if listing.filled == listing.count:
                # The jobs hold copies of the ids and, through this callback, the listing: a
                # cycle the collector would free only at its next full pass (at 10M objects,
                # hundreds of MB of listings in between).
                listing.size_jobs = ()
        return done


def _level(error: Exception) -> int:
    # An object pruned between the listing and its size read is git gc at work, not a fault.
    return logging.DEBUG if isinstance(error, odb.ObjectNotFound) else logging.ERROR
