"""Big objects, inflated as they are read: only a window of their bytes is held."""

from __future__ import annotations

import trio

# How much already-read data a streamed handle keeps behind its read position,
# so that the kernel's slightly out-of-order parallel reads do not force the
# stream to start over.
STREAM_WINDOW = 4 << 20
STREAM_CHUNK = 1 << 20


class StreamedObject:
    """A big object read through an odb stream, keeping only a window in memory.

    Sequential reads inflate progressively. A read behind the window re-opens
    the stream and skips forward: rare, and it keeps memory bounded.
    """

    def __init__(self, oid: bytes, store, limiter: trio.CapacityLimiter):
        self.oid = oid
        self._store = store
        self._limiter = limiter
        self._lock = trio.Lock()
        self._stream = None
        self._window = bytearray()
        self._window_start = 0  # object offset of self._window[0]
        self._eof = False

    async def _run(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def read(self, off: int, size: int):
        async with self._lock:
            if self._stream is None or off < self._window_start:
                await self._restart()
            end = off + size
            while not self._eof and self._window_start + len(self._window) < end:
                chunk = await self._run(self._stream.read, STREAM_CHUNK)
                if not chunk:
                    self._eof = True
                self._window += chunk
                self._trim(off)
            lo = off - self._window_start
            return bytes(self._window[lo:lo + size])

    def _trim(self, off: int) -> None:
        # Keep up to STREAM_WINDOW bytes before the current read offset.
        excess = min(off - self._window_start - STREAM_WINDOW, len(self._window))
        if excess > 0:
            del self._window[:excess]
            self._window_start += excess

    async def _restart(self) -> None:
        await self.close()
        self._stream = await self._run(self._store.open_stream, self.oid)
        self._window = bytearray()
        self._window_start = 0
        self._eof = False

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._run(stream.close)

    def close_soon(self) -> None:
        """Closes it from the loop, when evicted: closing a stream only drops its inflater."""
        stream, self._stream = self._stream, None
        self._window = bytearray()
        if stream is not None:
            stream.close()
