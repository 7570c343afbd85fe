"""A worker thread that reads the sizes of listed objects ahead of readdir.

A listing replies with every object's size (readdir sends attributes, so `find -size`
and `ls -l` cost no lookups), and a size costs a header read. Reading them in the
request would serialise that work with the loop's own per-entry work; here a thread
(in front of the helper process, which does the reading on the other core) fills a
listing batch by batch while readdir replies with the batches already filled, and a
listing opened speculatively (the next bucket of a walk) is filled before anyone asks.
"""

from __future__ import annotations

import collections
import threading

import trio

# Sizes are read in batches of this many entries, one helper-process trip each.
BATCH = 256


class SizeReader:
    """Fills `listing.attrs` (a size, or the exception a header read raised) batch by batch.

    A listing needs `names` (sorted hex ids), `attrs` (None where unknown), `filled`
    (how many leading attrs are known) and `batches` (the batches not yet handed out,
    None before the listing is first wanted); only this reader writes them. With more
    than one read_sizes function (one per helper process), batches are read in parallel.
    """

    def __init__(self, read_sizes):
        self._read_sizes = list(read_sizes)  # per worker: raw ids, concatenated -> [size or exception]
        self._jobs: collections.deque = collections.deque()  # listings with batches to hand out
        self._wake = threading.Condition()
        self._done: dict[object, dict[int, int]] = {}  # listing -> {start: stop} of batches read
        self._waiters: dict[object, trio.Event] = {}  # listing -> event set on its next batch
        self._token: trio.lowlevel.TrioToken | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def want(self, listing, *, urgent: bool) -> None:
        """Queues the listing's unread sizes; an urgent one (a reader waits) goes first. From the loop."""
        if listing.filled >= len(listing.names):
            return
        if not self._threads:
            self._token = trio.lowlevel.current_trio_token()
            for i, read_sizes in enumerate(self._read_sizes):
                thread = threading.Thread(target=self._work, args=(read_sizes,), name=f"gitfs-sizes-{i}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
        with self._wake:
            if listing.batches is None:
                n = len(listing.names)
                listing.batches = collections.deque((i, min(i + BATCH, n)) for i in range(listing.filled, n, BATCH))
            if not listing.batches:
                return
            if listing in self._jobs:
                if not urgent or self._jobs[0] is listing:
                    return
                self._jobs.remove(listing)
            if urgent:
                self._jobs.appendleft(listing)
            else:
                self._jobs.append(listing)
            self._wake.notify_all()

    async def wait(self, listing, i: int) -> None:
        """Returns once listing.attrs[i] is known."""
        self.want(listing, urgent=True)
        while listing.filled <= i:
            event = self._waiters.get(listing)
            if event is None:
                event = self._waiters[listing] = trio.Event()
            await event.wait()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopped = True
            self._jobs.clear()
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- the worker thread ---------------------------------------------------

    def _work(self, read_sizes) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                listing = self._jobs[0]
                start, stop = listing.batches.popleft()
                if not listing.batches:
                    self._jobs.popleft()
            try:
                sizes = read_sizes(bytes.fromhex("".join(listing.names[start:stop])))
            except Exception as e:  # never leave a readdir waiting: each entry shows the error
                sizes = [e] * (stop - start)
            listing.attrs[start:stop] = sizes
            with self._wake:
                # Batches finish out of order; filled covers only those before any gap.
                done = self._done.setdefault(listing, {})
                done[start] = stop
                while listing.filled in done:
                    listing.filled = done.pop(listing.filled)
                if not done:
                    del self._done[listing]
            try:
                self._token.run_sync_soon(self._woken, listing)
            except trio.RunFinishedError:
                return

    def _woken(self, listing) -> None:
        event = self._waiters.pop(listing, None)
        if event is not None:
            event.set()
