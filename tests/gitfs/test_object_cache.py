"""The shared object cache: byte bound, one inflation per object, errors passed to every waiter."""

from __future__ import annotations

import threading

import pytest
import trio

from gitfs.object_cache import ObjectCache
from gitfs.object_loader import one_at_a_time


class Loader:
    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, key, hint):
        self.gate.wait(10)
        self.calls.append(key)
        if key.startswith(b"bad"):
            raise ValueError(key)
        if key.startswith(b"huge"):
            return None
        return key * 10


def test_byte_bound_evicts_least_recently_used():
    cache = ObjectCache(100, [one_at_a_time(Loader())])
    cache.put(b"a", b"x" * 25)
    cache.put(b"b", b"x" * 25)
    cache.put(b"c", b"x" * 25)
    cache.peek(b"a")
    cache.put(b"d", b"x" * 25)
    cache.put(b"e", b"x" * 25)
    assert cache.size_bytes <= 100
    assert cache.peek(b"b") is None and cache.peek(b"a") is not None
    cache.put(b"big", b"x" * 26)  # over a quarter of the bound: never kept
    assert cache.peek(b"big") is None


def test_concurrent_gets_share_one_load():
    load = Loader()
    cache = ObjectCache(1 << 20, [one_at_a_time(load)] * 2)
    results = []

    async def go():
        load.gate.clear()

        async def get():
            results.append(await cache.get(b"k"))

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(get)
            await trio.sleep(0.05)
            load.gate.set()

    trio.run(go)
    assert load.calls == [b"k"] and results == [b"k" * 10] * 6
    cache.close()


def test_errors_reach_every_waiter_and_are_not_cached():
    load = Loader()
    cache = ObjectCache(1 << 20, [one_at_a_time(load)] * 2)
    errors = []

    async def go():
        async def get():
            try:
                await cache.get(b"bad1")
            except ValueError as e:
                errors.append(e)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(get)
        with pytest.raises(ValueError):
            await cache.get(b"bad1")

    trio.run(go)
    assert len(errors) == 3 and load.calls.count(b"bad1") >= 2
    cache.close()


def test_none_is_passed_on_and_not_cached():
    cache = ObjectCache(1 << 20, [one_at_a_time(Loader())])

    async def go():
        assert await cache.get(b"huge") is None
        assert cache.peek(b"huge") is None

    trio.run(go)
    cache.close()


def test_read_ahead_then_get_waits_for_the_same_load():
    load = Loader()
    cache = ObjectCache(1 << 20, [one_at_a_time(load)] * 2)

    async def go():
        load.gate.clear()
        cache.read_ahead([(b"r%d" % i, None) for i in range(20)])
        load.gate.set()
        assert await cache.get(b"r15") == b"r15" * 10
        with trio.fail_after(10):
            while cache.peek(b"r19") is None:
                await trio.sleep(0.01)

    trio.run(go)
    assert sorted(load.calls) == sorted(b"r%d" % i for i in range(20))
    cache.close()
