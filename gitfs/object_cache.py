"""A byte-bounded cache of inflated objects, shared by every open handle."""

from __future__ import annotations

from collections import OrderedDict

import trio

from .object_loader import ObjectLoader


class _Loading:
    """One inflation in flight; every handle that wants the object waits on it."""

    __slots__ = ("done", "data", "error", "urgent")

    def __init__(self, urgent: bool):
        self.done = trio.Event()
        self.data = None
        self.error: BaseException | None = None
        self.urgent = urgent


class ObjectCache:
    """Least-recently-used objects, bounded by the sum of their sizes.

    Inflation runs in worker threads (an ObjectLoader, one thread per load
    function, each maybe the front of a helper process); concurrent requests for
    one object share a single inflation. Objects larger than a quarter of the
    bound are never kept, so one huge object cannot flush everything else.
    """

    def __init__(self, max_bytes: int, loads):
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._loading: dict[bytes, _Loading] = {}
        self.loader = ObjectLoader(loads, self._deliver)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def peek(self, key: bytes):
        """The cached value, or None; counts as a use."""
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def wanted(self, key: bytes) -> bool:
        return key in self._entries or key in self._loading

    async def get(self, key: bytes, hint=None):
        """The value for key, loaded by a worker thread on a miss.

        The load function may return None (nothing worth caching, e.g. a huge
        object); every waiter gets that None and nothing is cached.
        """
        data = self.peek(key)
        if data is not None:
            return data
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = _Loading(urgent=True)
            self.loader.submit([(key, hint)], urgent=True)
        elif not loading.urgent:
            loading.urgent = True
            self.loader.promote(key)
        await loading.done.wait()
        if loading.error is not None:
            raise loading.error
        return loading.data

    def read_ahead(self, items) -> None:
        """Starts loading (key, hint) items neither cached nor loading, behind any urgent work."""
        fresh = [item for item in items if item[0] not in self._entries and item[0] not in self._loading]
        for key, _ in fresh:
            self._loading[key] = _Loading(urgent=False)
        if fresh:
            self.loader.submit(fresh)

    def _deliver(self, results) -> None:
        for key, data, error in results:
            loading = self._loading.pop(key, None)
            if error is None and data is not None:
                self.put(key, data)
            if loading is not None:
                loading.data, loading.error = data, error
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

    def close(self) -> None:
        self.loader.stop()
