"""A byte-bounded cache of inflated objects, shared by every open handle."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import trio


class _Loading:
    """One inflation in flight; every handle that wants the object waits on it."""

    __slots__ = ("done", "data", "error")

    def __init__(self):
        self.done = trio.Event()
        self.data = None
        self.error: BaseException | None = None


class ObjectCache:
    """Least-recently-used objects, bounded by the sum of their sizes.

    Inflation runs in a worker thread; concurrent requests for one object
    share a single inflation. Objects larger than a quarter of the bound are
    never kept, so one huge object cannot flush everything else.
    """

    def __init__(self, max_bytes: int, limiter: trio.CapacityLimiter):
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4
        self._limiter = limiter
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._loading: dict[bytes, _Loading] = {}

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def peek(self, key: bytes):
        """The cached value, or None; counts as a use."""
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def is_loading(self, key: bytes) -> bool:
        return key in self._loading

    async def get(self, key: bytes, load: Callable[[bytes], object]):
        """The value for key, computed by load(key) in a worker thread on a miss.

        load may return None (nothing worth caching, e.g. a huge object); that
        is passed on to every waiter and not cached.
        """
        data = self.peek(key)
        if data is not None:
            return data
        while True:
            loading = self._loading.get(key)
            if loading is None:
                return await self._load(key, load)
            await loading.done.wait()
            if loading.error is None:
                return loading.data
            if isinstance(loading.error, Exception):
                raise loading.error
            # The loading task was cancelled, not failed: try again ourselves.

    async def _load(self, key: bytes, load):
        loading = self._loading[key] = _Loading()
        try:
            data = await trio.to_thread.run_sync(load, key, limiter=self._limiter)
            loading.data = data
            if data is not None:
                self.put(key, data)
            return data
        except BaseException as e:
            loading.error = e
            raise
        finally:
            del self._loading[key]
            loading.done.set()

    def put(self, key: bytes, data) -> None:
        size = len(data)
        if size > self.max_entry:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = data
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)

    def discard(self, key: bytes) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
