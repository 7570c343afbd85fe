"""Sorted id tables behind a 256-entry fanout: the one bisect shared by .idx and multi-pack-index."""

from __future__ import annotations

import struct
from collections.abc import Iterator


def parse_fanout(buf, offset: int) -> tuple[int, ...] | None:
    """Reads 256 big-endian u32 counts; None when they ever decrease (the table would lie)."""
    fanout = struct.unpack_from(">256I", buf, offset)
    previous = 0
    for count in fanout:
        if count < previous:
            return None
        previous = count
    return fanout


class SortedIds:
    """N sorted raw ids at a fixed stride inside a buffer, found through a fanout.

    The pack index v1 interleaves offsets with ids (stride H+4, id at +4); v2 and the
    multi-pack-index store them packed (stride H). Exact and prefix search are written
    once here, over "the id at position i".
    """

    __slots__ = ("buf", "start", "stride", "raw_len", "fanout", "count")

    def __init__(self, buf, start: int, stride: int, raw_len: int, fanout: tuple[int, ...]):
        self.buf = buf
        self.start = start
        self.stride = stride
        self.raw_len = raw_len
        self.fanout = fanout
        self.count = fanout[255]

    def id_at(self, i: int) -> bytes:
        p = self.start + i * self.stride
        return self.buf[p : p + self.raw_len]

    def bucket_range(self, first_byte: int) -> tuple[int, int]:
        lo = self.fanout[first_byte - 1] if first_byte else 0
        return lo, self.fanout[first_byte]

    def lower_bound(self, raw: bytes) -> int:
        """The first position whose id is >= raw (raw may be a prefix)."""
        lo, hi = self.bucket_range(raw[0])
        buf, start, stride, n = self.buf, self.start, self.stride, len(raw)
        while lo < hi:
            mid = (lo + hi) >> 1
            p = start + mid * stride
            if buf[p : p + n] < raw:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, raw: bytes) -> int | None:
        i = self.lower_bound(raw)
        if i < self.count and self.id_at(i) == raw:
            return i
        return None

    def prefix_matches(self, raw_prefix: bytes, hex_prefix: str, limit: int) -> Iterator[bytes]:
        """Ids starting with hex_prefix (an odd digit count is allowed), at most `limit` of them.

        raw_prefix holds the whole bytes of the prefix; an odd last digit is checked in hex.
        """
        if not raw_prefix:
            raise ValueError("prefix needs at least two hex digits")
        i = self.lower_bound(raw_prefix)
        found = 0
        while i < self.count and found < limit:
            candidate = self.id_at(i)
            if not candidate.startswith(raw_prefix):
                return
            if candidate.hex().startswith(hex_prefix):
                found += 1
                yield candidate
            i += 1

    def ids_in_bucket(self, first_byte: int) -> list[bytes]:
        lo, hi = self.bucket_range(first_byte)
        if self.stride == self.raw_len:
            block = self.buf[self.start + lo * self.stride : self.start + hi * self.stride]
            n = self.raw_len
            return [block[k : k + n] for k in range(0, len(block), n)]
        return [self.id_at(i) for i in range(lo, hi)]
