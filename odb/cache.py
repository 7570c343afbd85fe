"""A byte-bounded, thread-safe least-recently-used cache (git's delta base cache, in spirit)."""

from __future__ import annotations

import threading
from collections import OrderedDict


class ByteLRU:
    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.used = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                return item[0]
            return None

    def put(self, key, value, nbytes: int) -> None:
        # One item larger than a quarter of the cache would flush everything useful.
        if nbytes > self.limit >> 2:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._items[key] = (value, nbytes)
            self.used += nbytes
            while self.used > self.limit:
                _, (_, size) = self._items.popitem(last=False)
                self.used -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0

    def __len__(self) -> int:
        return len(self._items)
