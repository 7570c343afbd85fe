"""Big objects streamed (gitfs/engine/streams.py): any number of readers, at any offsets and in any
order, get every byte, and readers far apart do not undo each other's work."""

from __future__ import annotations

import errno
import random

import pytest
import trio

from fake_store import FakeStream
from gitfs.engine import streams

SIZE = 300_000
DATA = {bytes([i]) * 20: random.Random(i).randbytes(SIZE) for i in range(6)}


async def in_thread(fn, *args):
    return await trio.to_thread.run_sync(fn, *args)


def make_table(log: list, data=DATA, stream=FakeStream) -> streams.StreamTable:
    return streams.StreamTable(lambda oid: stream("blob", data[oid], log), in_thread)


def inflated(log: list) -> int:
    return sum(n for event in log if isinstance(event, tuple) for n in event[1:])


@pytest.fixture
def small(monkeypatch):
    """Limits small enough that the objects here need all of the table's machinery."""
    monkeypatch.setattr(streams, "STREAM_WINDOW", 8192)
    monkeypatch.setattr(streams, "STREAM_AHEAD", 16384)
    monkeypatch.setattr(streams, "POINT_EVERY", 32768)


def test_more_readers_than_the_table_keeps_get_every_byte(small, monkeypatch):
    """Six objects read at once, piece by piece, through a table that keeps two objects and one
    cursor each: eviction happens under reads in flight, and no read comes back short."""
    monkeypatch.setattr(streams, "OBJECTS_KEPT", 2)
    monkeypatch.setattr(streams, "CURSORS_PER_OBJECT", 1)
    monkeypatch.setattr(streams, "WINDOW_BUDGET", 16384)
    log: list = []
    table = make_table(log)
    got = {oid: bytearray(SIZE) for oid in DATA}
    asked = dict.fromkeys(DATA, 0)

    async def reader(oid, seed):
        rnd = random.Random(seed)
        while asked[oid] < SIZE:
            off, n = asked[oid], rnd.choice([4096, 65536, 131072])
            asked[oid] += n
            data = await table.read(oid, off, n)
            assert len(data) == min(n, SIZE - off)
            got[oid][off : off + len(data)] = data
            await trio.sleep(rnd.random() / 1000)

    async def main():
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for seed, oid in enumerate(DATA):
                    for k in range(2):  # the kernel's parallel reads of one file, out of order
                        nursery.start_soon(reader, oid, seed * 2 + k)

    trio.run(main)
    for oid, data in DATA.items():
        assert got[oid] == data, oid.hex()


def test_two_readers_far_apart_each_keep_their_place(small):
    """A reader from the start and one from the middle, interleaved: each continues its own
    cursor, so the work is about one pass each, not a restart at every turn."""
    log: list = []
    table = make_table(log)
    oid, data = next(iter(DATA.items()))
    half = SIZE // 2

    async def main():
        for i in range(0, half, 8192):
            for off in (i, half + i):
                assert await table.read(oid, off, 8192) == data[off : off + 8192]

    trio.run(main)
    assert log.count("open") == 1
    # The first reader inflates its half once; the second starts from the only point there is
    # when it comes (byte 0) and inflates up to its half once, then its half. Readers that
    # undid each other would inflate from 0 at every turn: about SIZE * SIZE / 16384 bytes.
    assert inflated(log) <= SIZE // 2 + SIZE + 2 * FakeStream.CHUNK


def test_a_read_behind_every_cursor_restarts_from_a_saved_point(small):
    log: list = []
    table = make_table(log)
    oid, data = next(iter(DATA.items()))

    async def main():
        for off in range(0, SIZE, 65536):
            assert await table.read(oid, off, 65536) == data[off : off + 65536]
        before = inflated(log)
        off = SIZE - 100_000  # behind the window
        assert await table.read(oid, off, 100) == data[off : off + 100]
        return inflated(log) - before

    again = trio.run(main)
    assert log.count("open") == 1
    assert 0 < again <= streams.POINT_EVERY + FakeStream.CHUNK  # not from byte 0


def test_reads_at_and_past_the_end():
    log: list = []
    table = make_table(log)
    oid, data = next(iter(DATA.items()))

    async def main():
        assert await table.read(oid, SIZE - 10, 100) == data[-10:]
        assert await table.read(oid, SIZE, 100) == b""
        assert await table.read(oid, SIZE + 5000, 100) == b""

    trio.run(main)


class EndsEarly(FakeStream):
    """A stream whose header promised more than its data holds (odb raises for this; the
    table must not turn it into a short read either way)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.size += 100


def test_a_stream_that_ends_early_is_an_error_not_a_short_read():
    log: list = []
    table = make_table(log, stream=EndsEarly)
    oid = next(iter(DATA))

    async def main():
        with pytest.raises(OSError) as e:
            await table.read(oid, SIZE - 10, 100)
        assert e.value.errno == errno.EIO

    trio.run(main)


def test_memory_held_stays_within_the_budget(small, monkeypatch):
    monkeypatch.setattr(streams, "WINDOW_BUDGET", 65536)
    monkeypatch.setattr(streams, "OBJECTS_KEPT", 3)
    log: list = []
    table = make_table(log)

    async def main():
        for off in range(0, SIZE, 32768):
            for oid in DATA:
                await table.read(oid, off, 32768)
                assert len(table._objects) <= 3
                held = sum(o.window_bytes for o in table._objects.values())
                assert held <= 65536

    trio.run(main)
