"""Pushes into the kernel's page cache and invalidations of its entries, each on a thread of its own.

Both calls can block inside the kernel until some request of this mount has been answered:
notify_store waits for a page that a pending READ holds locked, and invalidating an entry waits for
a pending LOOKUP or READDIR in its directory. The loop answers those requests, and the loop may be
waiting for a worker (a READDIR for sizes, a READ for an object): so neither the loop nor a worker
may make these calls. Each kind gets one thread and a queue; the push queue is bounded by bytes,
and a push that does not fit is declined (the caller keeps the bytes in its cache instead).
"""

from __future__ import annotations

import collections
import logging
import threading

from gitfs.tuning import PUSH_QUEUE_BYTES, PUSH_CHUNK

log = logging.getLogger("gitfs")


class _Queue(threading.Thread):
    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stopped = False

    def put(self, item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                item = self._items.popleft()
            try:
                self.handle(item)
            except Exception:
                log.exception("%s failed", self.name)

    def handle(self, item) -> None:
        raise NotImplementedError


class _Pushes(_Queue):
    def __init__(self, kernel, on_refused):
        super().__init__("gitfs-push")
        self.kernel = kernel
        self.on_refused = on_refused
        self.queued_bytes = 0
        self.counts = collections.Counter()

    def handle(self, item) -> None:
        inode, oid, data = item
        try:
            view = memoryview(data)
            for offset in range(0, len(data), PUSH_CHUNK):
                self.kernel.push(inode, offset, view[offset : offset + PUSH_CHUNK])
            self.counts["pushed"] += 1
        except OSError as e:
            # The kernel does not know the inode (yet, or any more): a READ will ask for it.
            self.counts["push_refused"] += 1
            log.debug("push of %s refused: %s", oid.hex(), e)
            self.on_refused(oid, data)
        finally:
            with self._cond:
                self.queued_bytes -= len(data)


class _Invalidations(_Queue):
    def __init__(self, kernel):
        super().__init__("gitfs-invalidate")
        self.kernel = kernel

    def handle(self, item) -> None:
        parent, name, inode = item
        for call, args in ((self.kernel.forget_entry, (parent, name)), (self.kernel.forget_inode, (inode,))):
            try:
                call(*args)
            except OSError:
                pass  # the kernel did not hold it: nothing to forget


class KernelCache:
    def __init__(self, kernel, on_refused):
        """kernel: push(inode, offset, data), forget_entry(parent, name), forget_inode(inode).
        on_refused(oid, data) runs when the kernel refuses a push."""
        self._pushes = _Pushes(kernel, on_refused)
        self._invalidations = _Invalidations(kernel)
        self._pushes.start()
        self._invalidations.start()

    @property
    def counts(self):
        return self._pushes.counts

    def push(self, inode: int, oid: bytes, data) -> bool:
        """Queues the bytes for the page cache; False (nothing queued) when the queue is full."""
        q = self._pushes
        with q._cond:
            if q.queued_bytes and q.queued_bytes + len(data) > PUSH_QUEUE_BYTES:
                return False
            q.queued_bytes += len(data)
        q.put((inode, oid, data))
        return True

    def forget(self, parent: int, name: bytes, inode: int) -> None:
        """The kernel forgets a directory entry and the inode it named (an object that vanished)."""
        self._invalidations.put((parent, name, inode))

    def close(self) -> None:
        self._pushes.stop()
        self._invalidations.stop()
