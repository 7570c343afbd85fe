"""Worker threads that inflate objects: what a reader asks for now first, read-ahead after."""

from __future__ import annotations

import collections
import logging
import threading

import trio

log = logging.getLogger("gitfs")


class ObjectLoader:
    """A few threads that run load(key) and hand each result to the trio loop.

    Results go back through TrioToken.run_sync_soon, which does not block the
    worker: a read-ahead thread walks a bucket's objects while the loop serves
    requests, and the loop never pays a thread round trip for an object the
    reader reaches after it was inflated.
    """

    def __init__(self, load, deliver, threads: int = 2):
        self._load = load  # (key, hint) -> value, runs in a worker thread
        self._deliver = deliver  # (key, value, error) -> None, runs on the trio loop
        self._threads = threads
        self._queue: collections.deque = collections.deque()
        self._wanted = threading.Condition()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopped = False
        self._workers: list[threading.Thread] = []

    def _ensure_started(self) -> None:
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()
            for i in range(self._threads):
                worker = threading.Thread(target=self._work, name=f"gitfs-loader-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)

    def submit(self, items, *, urgent: bool = False) -> None:
        """Queues (key, hint) pairs; urgent ones go ahead of queued read-ahead.

        Call from the trio loop. The hint is passed to load() (here: the
        object's size when a listing already knows it).
        """
        self._ensure_started()
        with self._wanted:
            if urgent:
                self._queue.extendleft(reversed(items))
            else:
                self._queue.extend(items)
            self._wanted.notify(len(items))

    def promote(self, key) -> None:
        """Moves a queued read-ahead key to the front: a reader wants it now."""
        with self._wanted:
            for item in self._queue:
                if item[0] == key:
                    break
            else:
                return  # a worker has it already
            self._queue.remove(item)
            self._queue.appendleft(item)

    def stop(self) -> None:
        with self._wanted:
            self._stopped = True
            self._wanted.notify_all()

    def _work(self) -> None:
        while True:
            with self._wanted:
                while not self._queue and not self._stopped:
                    self._wanted.wait()
                if self._stopped:
                    return
                key, hint = self._queue.popleft()
            value, error = None, None
            try:
                value = self._load(key, hint)
            except BaseException as e:  # handed to the waiting request, which maps it to errno
                error = e
            try:
                self._token.run_sync_soon(self._deliver, key, value, error)
            except trio.RunFinishedError:
                return
