"""Big objects, inflated as they are read: too big to hold, so each reader's place holds a window.

An object being streamed has cursors (an odb stream at some offset, with a window of the bytes
behind it) and saved points (forks of a stream, taken every so many MiB on the way). A read
takes the cursor it continues, or else starts a new cursor from the nearest point before it:
readers far apart in one object never undo each other's progress, and a reader that goes back
restarts a few MiB before its offset, never from byte 0.

Nothing is ever taken from under a read in flight: a cursor is closed only while nobody holds
it, and a read that finds its cursor closed (or moved past its offset) meanwhile picks again.
A read returns exactly the bytes asked for, short only at the object's end: the kernel takes a
short read for the end of the file, so a stream that ended early is an error, never a short read.
"""

from __future__ import annotations

import bisect
import collections
import errno
import itertools
from typing import Awaitable, Callable

import trio

from gitfs.tuning import (
    STREAM_WINDOW,
    STREAM_AHEAD,
    POINT_EVERY,
    POINTS_PER_OBJECT,
    CURSORS_PER_OBJECT,
    WINDOW_BUDGET,
    OBJECTS_KEPT,
)


Run = Callable[..., Awaitable]


class _Cursor:
    """One place being read in an object: its stream, and the bytes behind it."""

    _ticks = itertools.count()

    def __init__(self, stream):
        self.stream = stream
        self.lock = trio.Lock()
        self.window = bytearray()
        self.start = stream.offset  # object offset of window[0]
        self.goal = self.start  # the furthest offset a reader has asked it to reach
        self.used = next(self._ticks)
        self.closed = False

    @property
    def end(self) -> int:
        return self.start + len(self.window)

    def continues(self, off: int) -> bool:
        """Whether a read at off is served by this cursor (as it is, or moved on)."""
        return not self.closed and self.start <= off <= max(self.end, self.goal) + STREAM_AHEAD

    def close(self) -> None:
        self.closed = True
        self.window = bytearray()
        self.stream.close()


class StreamedObject:
    """The cursors and saved points of one big object."""

    def __init__(self, oid: bytes, first, run: Run, counts: collections.Counter):
        self.oid = oid
        self.size = first.size
        self._run = run
        self._counts = counts
        self.cursors: list[_Cursor] = [_Cursor(first)]
        self._points = [first.fork()]  # streams at offsets, sorted; never read, only forked
        self._point_every = max(POINT_EVERY, -(-self.size // POINTS_PER_OBJECT))

    @property
    def busy(self) -> bool:
        return any(c.lock.locked() for c in self.cursors)

    @property
    def window_bytes(self) -> int:
        return sum(len(c.window) for c in self.cursors)

    async def read(self, off: int, size: int) -> bytes:
        size = max(0, min(size, self.size - off))
        if size == 0:
            return b""
        while True:
            cursor = self._cursor_for(off)
            async with cursor.lock:
                if not cursor.continues(off):
                    continue  # closed, or moved past off, while this read waited for it
                cursor.used = next(_Cursor._ticks)
                cursor.goal = max(cursor.goal, off + size)
                await self._advance(cursor, off, off + size)
                lo = off - cursor.start
                data = bytes(cursor.window[lo : lo + size])
            if len(data) != size:
                # odb raises for a stream that ends early; this guards the rule anyway.
                raise OSError(errno.EIO, f"stream of {self.oid.hex()} ended at {off + len(data)} of {self.size}")
            return data

    def _cursor_for(self, off: int) -> _Cursor:
        """The cursor that holds off, else the nearest one before it that can move on to it,
        else a new one from the nearest saved point."""
        best = None
        for c in self.cursors:
            if c.continues(off) and (best is None or _closeness(c, off) < _closeness(best, off)):
                best = c
        if best is not None:
            return best
        if not self._points:  # closed (evicted) under this read: cannot happen while it holds a cursor
            raise OSError(errno.EIO, f"stream of {self.oid.hex()} was closed")
        k = bisect.bisect_right([p.offset for p in self._points], off) - 1
        cursor = _Cursor(self._points[k].fork())
        self._counts["cursors"] += 1
        cursor.goal = off  # made for this read, however far past the point it starts
        self.close_idle(keep=CURSORS_PER_OBJECT - 1)  # (the new one is not theirs to close)
        self.cursors.append(cursor)
        return cursor

    async def _advance(self, cursor: _Cursor, off: int, end: int) -> None:
        while cursor.end < end:
            chunk = await self._run(cursor.stream.read_chunk)
            if not chunk:
                break
            self._counts["inflated"] += len(chunk)
            cursor.window += chunk
            self._maybe_save(cursor)
            # Keep up to STREAM_WINDOW bytes before the offset being read.
            excess = min(off - cursor.start - STREAM_WINDOW, len(cursor.window))
            if excess > 0:
                del cursor.window[:excess]
                cursor.start += excess

    def _maybe_save(self, cursor: _Cursor) -> None:
        """Saves a point where the cursor is, if the nearest one before it is far enough back."""
        at = cursor.end
        offsets = [p.offset for p in self._points]
        k = bisect.bisect_right(offsets, at)
        if at - offsets[k - 1] >= self._point_every and len(self._points) < POINTS_PER_OBJECT + 1:
            self._points.insert(k, cursor.stream.fork())

    def close_idle(self, keep: int = 0) -> None:
        """Closes idle cursors, least recently used first, until at most keep are left."""
        idle = sorted((c for c in self.cursors if not c.lock.locked()), key=lambda c: c.used)
        for c in idle[: max(0, len(self.cursors) - keep)]:
            c.close()
            self.cursors.remove(c)

    def close(self) -> None:
        """Closes everything idle; a cursor in use is closed by close_idle once its read is done."""
        self.close_idle()
        for p in self._points:
            p.close()
        self._points = self._points[:0]


def _closeness(cursor: _Cursor, off: int) -> tuple[int, int]:
    # A cursor that holds off beats one that must move on to it; among those, the nearer.
    if off < cursor.end:
        return (0, 0)
    return (1, off - cursor.end)


class StreamTable:
    """The objects being streamed, with the memory they hold bounded (WINDOW_BUDGET, OBJECTS_KEPT).

    `open_stream(oid)` is odb's, run in a thread by `run`."""

    def __init__(self, open_stream, run: Run):
        self._open_stream = open_stream
        self._run = run
        self._objects: collections.OrderedDict[bytes, StreamedObject] = collections.OrderedDict()
        self._opening: dict[bytes, trio.Event] = {}
        # Objects opened, cursors started from saved points, bytes inflated (for `gitfs status`).
        self.counts: collections.Counter = collections.Counter()

    def __contains__(self, oid: bytes) -> bool:
        return oid in self._objects

    async def read(self, oid: bytes, off: int, size: int) -> bytes:
        obj = await self._object(oid)
        try:
            return await obj.read(off, size)
        finally:
            self._bound()

    async def _object(self, oid: bytes) -> StreamedObject:
        while True:
            obj = self._objects.get(oid)
            if obj is not None:
                self._objects.move_to_end(oid)
                return obj
            opening = self._opening.get(oid)
            if opening is None:
                break
            await opening.wait()  # another reader is opening it: share its stream
        self._opening[oid] = done = trio.Event()
        try:
            first = await self._run(self._open_stream, oid)
            self._objects[oid] = obj = StreamedObject(oid, first, self._run, self.counts)
            self.counts["opened"] += 1
            return obj
        finally:
            del self._opening[oid]
            done.set()

    def _bound(self) -> None:
        objects = self._objects
        total = sum(o.window_bytes for o in objects.values())
        for obj in list(objects.values()):  # least recently used first
            if total <= WINDOW_BUDGET:
                break
            total -= obj.window_bytes
            obj.close_idle()
            total += obj.window_bytes
        for oid, obj in list(objects.items()):
            if len(objects) <= OBJECTS_KEPT:
                break
            if not obj.busy:
                del objects[oid]
                obj.close()

    def status(self) -> dict:
        return {**self.counts, "objects": len(self._objects),
                "held": sum(o.window_bytes for o in self._objects.values())}

    def close(self) -> None:
        for obj in self._objects.values():
            obj.close()
        self._objects.clear()
