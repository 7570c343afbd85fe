"""The typed messages between the mount and its helper processes, and how they are framed.

A frame is a 12-byte head (header length, payload length), a pickled header (one of the message
classes below, tuples, which pickle fast) and a raw payload (an object's bytes, an array of
sizes): the payload is never pickled, so a 30 MB object costs one copy into the pipe and one out
of it. Frames are read through a buffer, a few system calls for many small frames. Errors travel whole,
as the exception objects odb raised (odb's errors pickle with all their fields).

Both ends only ever unpickle what the other end of a private pipe wrote: the helper is our own
code, started by the mount with the mount's privileges.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time
from typing import NamedTuple

_HEAD = struct.Struct(">IQ")
# No header is anywhere near this; a larger length means the stream is out of step.
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 40

URGENT, SIZES, AHEAD = 0, 1, 2  # lanes, in priority order
LANE_NAMES = ("urgent", "sizes", "ahead")


class StoreConfig(NamedTuple):
    """What a helper needs to open the same store as the mount."""

    repository: str | bytes
    verify: bool
    sys_path: tuple[str, ...]
    refused: tuple[str, ...] = ()  # real paths (the mount point) never looked at (odb/refused_paths.py)
    device: int = -1  # the FUSE session's descriptor, inherited: pushes go straight to the kernel
    cache_size: int = 96 << 20  # the helper's delta base cache (odb.open's cache_size)


class ReaderAt(NamedTuple):
    """Where a reader is: the listing it walks (BucketListing.listing_id) and its position in
    that listing. An urgent request tells a helper where its reader is, and pushes keep clear."""

    listing: int = 0  # no listing
    position: int = -1  # nowhere known


NOWHERE = ReaderAt()


class Load(NamedTuple):
    """An object's bytes; objects above max_size come back as too_big (they are streamed)."""

    oid: bytes
    max_size: int
    size: int = -1  # the size, when the mount knows it (a listing): no header read to check it
    where: ReaderAt = NOWHERE  # the object's place in the listing its reader walks


class Push(NamedTuple):
    """Read-ahead: objects to push into the kernel's page cache, in order. items are
    (oid, inode, size, ReaderAt). An item comes back as a Loaded(index=k) with its bytes when it
    cannot be pushed (the kernel refused, a reader claimed it, a reader is near); the last answer
    is a PushDone naming the items pushed."""

    items: tuple
    max_size: int


class Sizes(NamedTuple):
    """The sizes of the objects whose raw ids are concatenated in ids."""

    ids: bytes


class Request(NamedTuple):
    seq: int
    lane: int
    generation: int  # the mount's store generation: the helper refreshes when it is behind
    job: Load | Push | Sizes


class Bump(NamedTuple):
    """A reader now waits for request seq (item index of a Push), sent earlier in a lower lane:
    serve it next, and send its bytes rather than push them (the reader's READ holds the pages a
    push would wait for)."""

    seq: int
    index: int = -1
    where: ReaderAt = NOWHERE  # where that reader is


class Ready(NamedTuple):
    """The helper's first frame: its store is open."""

    pid: int


class Loaded(NamedTuple):
    """An object's bytes (the payload) unless too_big or error: the answer to a Load, or to one
    item of a Push (index >= 0)."""

    seq: int
    index: int = -1
    too_big: bool = False
    error: Exception | None = None


class Pushing(NamedTuple):
    """The helper is about to push item index of a Push into the page cache. A READ of that
    object from now on holds a page the push waits for, and the push's answer waits for the READ:
    the mount makes the object itself at once rather than wait (object_cache.Loads.get)."""

    seq: int
    index: int


class PushDone(NamedTuple):
    """The last answer to a Push: the items that went into the page cache."""

    seq: int
    pushed: tuple


class SizesRead(NamedTuple):
    """The answer to Sizes. The payload is one int64 size per id (-1 where errors has the
    reason), then one uint16 per id: which of accesses (odb.Access: owner, group, mode, mtime
    of the file that holds it) applies."""

    seq: int
    errors: dict
    accesses: tuple = ()


class LogLine(NamedTuple):
    """A log record of the helper, logged again by the mount (which owns the log)."""

    level: int
    name: str
    message: str


class HelperGone(Exception):
    """The other end closed its pipe, sent garbage, or missed its deadline."""


def encode(header, payload=b"") -> list:
    """The buffers of one frame, for os.writev."""
    head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    return [_HEAD.pack(len(head), len(payload)), head, payload]


def write_frame(fd: int, header, payload=b"", deadline: float | None = None) -> None:
    """Writes a whole frame to fd; with a deadline, fd must be non-blocking."""
    buffers = [memoryview(b) for b in encode(header, payload) if len(b)]
    while buffers:
        if deadline is not None:
            _wait(fd, select.POLLOUT, deadline)
        try:
            n = os.writev(fd, buffers)
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError) as e:
            raise HelperGone(f"pipe closed ({e.strerror})") from None
        while n:
            if n >= len(buffers[0]):
                n -= len(buffers.pop(0))
            else:
                buffers[0] = buffers[0][n:]
                n = 0


class FrameReader:
    """Reads frames from fd through a buffer: small frames cost no system call of their own.
    With a deadline, fd must be non-blocking."""

    CHUNK = 1 << 16

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = bytearray()
        self._pos = 0

    def buffered(self) -> bool:
        """Whether a whole frame head is already here (no need to wait on the descriptor)."""
        return len(self._buf) - self._pos >= _HEAD.size

    def read(self, deadline: float | None = None) -> tuple[object, bytearray]:
        """(header, payload) of the next frame."""
        header_len, payload_len = _HEAD.unpack(self._take(_HEAD.size, deadline))
        if header_len > MAX_HEADER or payload_len > MAX_PAYLOAD:
            raise HelperGone(f"frame of {header_len} + {payload_len} bytes: the stream is out of step")
        try:
            header = pickle.loads(self._take(header_len, deadline))
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as e:
            raise HelperGone(f"unreadable frame: {e}") from None
        return header, self._take(payload_len, deadline)

    def _take(self, n: int, deadline: float | None) -> bytearray:
        if len(self._buf) - self._pos < n and n - (len(self._buf) - self._pos) >= self.CHUNK:
            return self._take_big(n, deadline)
        while len(self._buf) - self._pos < n:
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += self._recv(deadline)
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return out

    def _take_big(self, n: int, deadline: float | None) -> bytearray:
        """A big payload: what is buffered, then the rest read straight into place."""
        out = bytearray(n)
        have = len(self._buf) - self._pos
        out[:have] = memoryview(self._buf)[self._pos :]
        self._buf.clear()
        self._pos = 0
        view = memoryview(out)
        while have < n:
            if deadline is not None:
                _wait(self.fd, select.POLLIN, deadline)
            try:
                k = os.readv(self.fd, [view[have:]])
            except BlockingIOError:
                continue
            if k == 0:
                raise HelperGone("pipe closed")
            have += k
        return out

    def _recv(self, deadline) -> bytes:
        while True:
            if deadline is not None:
                _wait(self.fd, select.POLLIN, deadline)
            try:
                chunk = os.read(self.fd, self.CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                raise HelperGone("pipe closed")
            return chunk


def _wait(fd: int, events: int, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HelperGone("deadline passed")
    poller = select.poll()
    poller.register(fd, events)
    if not poller.poll(left * 1000):
        raise HelperGone("deadline passed")
