"""The typed messages between the mount and its helper processes, and how they are framed.

A frame is a 12-byte head (header length, payload length), a pickled header (one of the message
classes below) and a raw payload (an object's bytes, an array of sizes): the payload is never
pickled, so a 30 MB object costs one copy into the pipe and one out of it. Errors travel whole,
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
from dataclasses import dataclass

_HEAD = struct.Struct(">IQ")
# No header is anywhere near this; a larger length means the stream is out of step.
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 40

URGENT, SIZES, AHEAD = 0, 1, 2  # lanes, in priority order
LANE_NAMES = ("urgent", "sizes", "ahead")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What a helper needs to open the same store as the mount."""

    repository: str | bytes
    verify: bool
    sys_path: tuple[str, ...]
    refused: tuple[str, ...] = ()  # the mount point: never looked at (odb/refused_paths.py)


@dataclass(frozen=True, slots=True)
class Load:
    """An object's bytes; objects above max_size come back as too_big (they are streamed)."""

    oid: bytes
    max_size: int


@dataclass(frozen=True, slots=True)
class Sizes:
    """The sizes of the objects whose raw ids are concatenated in ids."""

    ids: bytes


@dataclass(frozen=True, slots=True)
class Request:
    seq: int
    lane: int
    generation: int  # the mount's store generation: the helper refreshes when it is behind
    job: Load | Sizes


@dataclass(frozen=True, slots=True)
class Bump:
    """A reader now waits for request seq, sent earlier in a lower lane: serve it next."""

    seq: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The helper's first frame: its store is open."""

    pid: int


@dataclass(frozen=True, slots=True)
class Loaded:
    """The answer to a Load: the payload is the object's bytes unless too_big or error."""

    seq: int
    too_big: bool = False
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class SizesRead:
    """The answer to Sizes: the payload is one int64 per id (-1 where errors has the reason)."""

    seq: int
    errors: dict


@dataclass(frozen=True, slots=True)
class LogLine:
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


def read_frame(fd: int, deadline: float | None = None) -> tuple[object, bytearray]:
    """(header, payload) of the next frame; with a deadline, fd must be non-blocking."""
    head = _read_exact(fd, _HEAD.size, deadline)
    header_len, payload_len = _HEAD.unpack(head)
    if header_len > MAX_HEADER or payload_len > MAX_PAYLOAD:
        raise HelperGone(f"frame of {header_len} + {payload_len} bytes: the stream is out of step")
    try:
        header = pickle.loads(_read_exact(fd, header_len, deadline))
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as e:
        raise HelperGone(f"unreadable frame: {e}") from None
    return header, _read_exact(fd, payload_len, deadline)


def _read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            _wait(fd, select.POLLIN, deadline)
        try:
            k = os.readv(fd, [view[got:]])
        except BlockingIOError:
            continue
        if k == 0:
            raise HelperGone("pipe closed")
        got += k
    return buf


def _wait(fd: int, events: int, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HelperGone("deadline passed")
    poller = select.poll()
    poller.register(fd, events)
    if not poller.poll(left * 1000):
        raise HelperGone("deadline passed")
