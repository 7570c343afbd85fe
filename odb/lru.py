"""The one bounded cache: least recently used first out, bounded by a count, by bytes, or both.

Every cache of odb and of the mount is one of these (delta bases, kept objects, listings,
parsed trees, walks, descriptors, mapped packs), so that "how much is kept, and what goes
first" is written once.

An LRU is not locked: its owner holds a lock where threads share it, since that lock often
guards more than the cache (ByteLRU is the locked one odb shares between threads).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_NOTHING: tuple = ()


class LRU(Generic[K, V]):
    """At most max_items entries and max_bytes bytes (None: no bound of that kind).

    An entry weighs what put() is told, or weigh(value), or nothing. The entry just put is
    never the one evicted: a caller can always use what it has put, even one alone over the
    byte bound (a huge tree is listed, then let go of when the next one comes).
    """

    __slots__ = ("max_items", "max_bytes", "nbytes", "_weigh", "_items")

    def __init__(self, max_items: int | None = None, max_bytes: int | None = None,
                 weigh: Callable[[V], int] | None = None):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._weigh = weigh
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def keys(self):
        return self._items.keys()

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of (key, value), least recently used first."""
        return [(key, item[0]) for key, item in self._items.items()]

    def get(self, key: K, default: Any = None) -> V | Any:
        """The value, which becomes the most recently used; default if there is none."""
        item = self._items.get(key)
        if item is None:
            return default
        self._items.move_to_end(key)
        return item[0]

    def peek(self, key: K, default: Any = None) -> V | Any:
        """The value without counting it as a use."""
        item = self._items.get(key)
        return default if item is None else item[0]

    def put(self, key: K, value: V, nbytes: int | None = None) -> list[tuple[K, V]] | tuple:
        """Keeps value as the most recently used; returns the (key, value) pairs evicted to
        make room (an owner that must release them does so outside its lock)."""
        if nbytes is None:
            nbytes = self._weigh(value) if self._weigh is not None else 0
        items = self._items
        old = items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        items[key] = (value, nbytes)
        self.nbytes += nbytes
        return self._evict(1)

    def touch(self, key: K) -> None:
        """Counts key as used, if it is still here (safe without the owner's lock: a key
        evicted meanwhile is simply not touched)."""
        try:
            self._items.move_to_end(key)
        except KeyError:
            pass

    def pop(self, key: K, default: Any = None) -> V | Any:
        item = self._items.pop(key, None)
        if item is None:
            return default
        self.nbytes -= item[1]
        return item[0]

    def shrink(self, max_bytes: int | None = None) -> list[tuple[K, V]] | tuple:
        """Evicts down to the bounds (or to max_bytes, when the room left changes), keeping
        nothing back: what the owner gives room to is not in the cache."""
        if max_bytes is not None:
            self.max_bytes = max_bytes
        return self._evict(0)

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0

    def _evict(self, keep: int) -> list[tuple[K, V]] | tuple:
        items, max_items, max_bytes = self._items, self.max_items, self.max_bytes
        if ((max_items is None or len(items) <= max_items)
                and (max_bytes is None or self.nbytes <= max_bytes)):
            return _NOTHING
        evicted = []
        while len(items) > keep and ((max_items is not None and len(items) > max_items)
                                     or (max_bytes is not None and self.nbytes > max_bytes)):
            key, (value, nbytes) = items.popitem(last=False)
            self.nbytes -= nbytes
            evicted.append((key, value))
        return evicted


class ByteLRU:
    """A byte-bounded LRU that threads share (git's delta base cache, in spirit): an object
    over a quarter of the bound is not kept, since it would flush everything useful."""

    __slots__ = ("limit", "_lru", "_lock")

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self._lru: LRU = LRU(max_bytes=limit_bytes)
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._lru.nbytes

    def get(self, key):
        with self._lock:
            return self._lru.get(key)

    def put(self, key, value, nbytes: int) -> None:
        if nbytes > self.limit >> 2:
            return
        with self._lock:
            self._lru.put(key, value, nbytes)

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)
