"""The size reader: listings filled batch by batch, by several workers, waiters woken in order."""

from __future__ import annotations

import random
import threading
import time

import trio

from gitfs.size_reader import BATCH, SizeReader


class Listing:
    def __init__(self, n: int, salt: int = 0):
        self.names = ["%040x" % (k * 7919 + salt) for k in range(n)]
        self.attrs = [None] * n
        self.filled = 0
        self.batches = None


def size_of(raw: bytes) -> int:
    return int.from_bytes(raw[-4:], "big") % 100_000


def slow_sizes(seed: int, calls: list):
    rng = random.Random(seed)

    def read_sizes(ids):
        raws = [ids[i:i + 20] for i in range(0, len(ids), 20)]
        calls.append((threading.current_thread().name, len(raws)))
        time.sleep(rng.random() * 0.01)  # workers finish their batches out of order
        return [size_of(raw) for raw in raws]
    return read_sizes


def test_two_workers_fill_every_entry_and_waiters_see_a_filled_prefix():
    calls: list = []
    reader = SizeReader([slow_sizes(1, calls), slow_sizes(2, calls)])
    listing = Listing(10 * BATCH + 17)

    async def go():
        for i in (0, BATCH - 1, BATCH, 5 * BATCH + 3, len(listing.names) - 1):
            await reader.wait(listing, i)
            assert listing.filled > i
            assert all(isinstance(a, int) for a in listing.attrs[: listing.filled])

    trio.run(go)
    reader.stop()
    assert listing.filled == len(listing.names)
    assert listing.attrs == [size_of(bytes.fromhex(h)) for h in listing.names]
    assert {name for name, _ in calls} == {"gitfs-sizes-0", "gitfs-sizes-1"}
    assert sum(n for _, n in calls) == len(listing.names)  # each batch read once


def test_an_urgent_listing_goes_ahead_of_a_speculative_one():
    calls: list = []
    gate = threading.Event()

    def gated(ids):
        gate.wait(10)
        calls.append(ids[:20])
        return [size_of(ids[i:i + 20]) for i in range(0, len(ids), 20)]

    reader = SizeReader([gated])
    ahead, wanted = Listing(4 * BATCH, salt=1), Listing(BATCH, salt=2)

    async def go():
        reader.want(ahead, urgent=False)
        await trio.sleep(0.05)  # the worker holds ahead's first batch at the gate
        reader.want(wanted, urgent=True)
        gate.set()
        await reader.wait(wanted, BATCH - 1)

    trio.run(go)
    reader.stop()
    # ahead's first batch was already taken; wanted's batch came next, before the rest.
    assert calls[1] == bytes.fromhex(wanted.names[0])


def test_a_failing_read_fills_the_batch_with_the_error():
    def broken(ids):
        raise OSError("helper gone")

    reader = SizeReader([broken])
    listing = Listing(3)

    async def go():
        await reader.wait(listing, 2)

    trio.run(go)
    reader.stop()
    assert all(isinstance(a, OSError) for a in listing.attrs)
