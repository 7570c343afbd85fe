"""Worker threads that inflate objects: what a reader asks for now first, read-ahead after."""

from __future__ import annotations

import collections
import threading

import trio

# Read-ahead results go back to the loop in batches of up to this many, so the
# loop is woken once per batch instead of once per object.
DELIVERY_BATCH = 8
# A worker hands its load function up to this many queued keys at once: a helper
# process then has the next request in hand while this side takes in an answer,
# instead of both taking turns to wait.
PIPELINE = 6


def one_at_a_time(load):
    """A load_many(items, on_result) made of a load(key, hint) function."""
    def load_many(items, on_result):
        for key, hint in items:
            try:
                value, error = load(key, hint), None
            except BaseException as e:  # handed to the waiting request, which maps it to errno
                value, error = None, e
            on_result(key, value, error)
    return load_many


class ObjectLoader:
    """A few threads that each run a load function and hand the results to the trio loop.

    Each load function is load_many(items, on_result): it loads the (key, hint) items
    in order and calls on_result(key, value, error) as each one is done.

    Results go back through TrioToken.run_sync_soon, which does not block the
    worker: a read-ahead thread walks a bucket's objects while the loop serves
    requests, and the loop pays no thread round trip for an object that was
    inflated before the reader reached it.
    """

    def __init__(self, loads, deliver):
        self._loads = loads  # one load_many function per worker thread
        self._deliver = deliver  # [(key, value, error)] -> None, runs on the trio loop
        self._queue: collections.deque = collections.deque()  # (key, hint)
        self._urgent: set = set()  # keys a request is waiting for
        self._wanted = threading.Condition()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopped = False
        self._workers: list[threading.Thread] = []

    def _ensure_started(self) -> None:
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()
            for i, load in enumerate(self._loads):
                worker = threading.Thread(target=self._work, args=(load,), name=f"gitfs-loader-{i}", daemon=True)
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
                self._urgent.update(key for key, _ in items)
            else:
                self._queue.extend(items)
            self._wanted.notify(len(items))

    def promote(self, key) -> None:
        """A request now waits for a read-ahead key: load and deliver it first."""
        with self._wanted:
            self._urgent.add(key)
            for item in self._queue:
                if item[0] == key:
                    self._queue.remove(item)
                    self._queue.appendleft(item)
                    return

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the workers once their current load is done, so the store can close under none."""
        with self._wanted:
            self._stopped = True
            self._queue.clear()
            self._wanted.notify_all()
        for worker in self._workers:
            worker.join(timeout)

    def _work(self, load_many) -> None:
        done = []

        def on_result(key, value, error) -> None:
            nonlocal done
            done.append((key, value, error))
            with self._wanted:
                # A request may have started waiting for any result held back so far.
                urgent = any(k in self._urgent for k, _, _ in done)
                idle = not self._queue
                if urgent or idle or len(done) >= DELIVERY_BATCH:
                    self._urgent.difference_update(k for k, _, _ in done)
            if urgent or idle or len(done) >= DELIVERY_BATCH:
                batch, done = done, []
                try:
                    self._token.run_sync_soon(self._deliver, batch)
                except trio.RunFinishedError:
                    pass  # the mount is ending; nobody waits any more

        while True:
            with self._wanted:
                while not self._queue and not self._stopped:
                    self._wanted.wait()
                if self._stopped:
                    return
                items = [self._queue.popleft() for _ in range(min(PIPELINE, len(self._queue)))]
            load_many(items, on_result)
