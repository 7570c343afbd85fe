"""Sorted id tables behind a 256-entry fanout: the one bisect shared by .idx and multi-pack-index."""

from __future__ import annotations

import mmap
import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterator

from ..oid import Prefix
from ..tuning import SUBFANOUT_MIN, TABLE_RESIDENT_BUDGET as RESIDENT_BUDGET, FIND_TOUCH


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

    __slots__ = ("buf", "start", "stride", "raw_len", "fanout", "count", "_sub", "_fanout_array", "_touched")

    def __init__(self, buf, start: int, stride: int, raw_len: int, fanout: tuple[int, ...]):
        self.buf = buf
        self.start = start
        self.stride = stride
        self.raw_len = raw_len
        self.fanout = fanout
        self.count = fanout[255]
        self._sub: list[array | None] = [None] * 256
        self._fanout_array: array | None = None
        self._touched = 0  # bytes read in bulk since the mapping last gave its pages back

    def fanout_array(self) -> array:
        """The fanout as 256 native u32s: what odb/_sizes.c searches with."""
        if self._fanout_array is None:
            self._fanout_array = array("I", self.fanout)
        return self._fanout_array

    def id_at(self, i: int) -> bytes:
        p = self.start + i * self.stride
        return self.buf[p : p + self.raw_len]

    def bucket_range(self, first_byte: int) -> tuple[int, int]:
        lo = self.fanout[first_byte - 1] if first_byte else 0
        return lo, self.fanout[first_byte]

    def _subfanout(self, first_byte: int) -> array | None:
        """Positions where each second byte starts within the bucket (257 entries), or None
        for a small bucket. Built once per bucket, from one slice of second bytes."""
        sub = self._sub[first_byte]
        if sub is None:
            lo, hi = self.bucket_range(first_byte)
            if hi - lo <= SUBFANOUT_MIN:
                return None
            p = self.start + lo * self.stride
            self.touched((hi - lo) * self.stride)  # the whole bucket is read, once
            second = self.buf[p + 1 : p + (hi - lo) * self.stride : self.stride]
            sub = array("I", [lo + bisect_left(second, b) for b in range(256)])
            sub.append(hi)
            self._sub[first_byte] = sub
        return sub

    def _range(self, raw: bytes) -> tuple[int, int]:
        """The positions whose ids share raw's first byte, and its second when raw has one."""
        if len(raw) > 1:
            sub = self._subfanout(raw[0])
            if sub is not None:
                return sub[raw[1]], sub[raw[1] + 1]
        return self.bucket_range(raw[0])

    def lower_bound(self, raw: bytes) -> int:
        """The first position whose id is >= raw (raw may be a prefix)."""
        lo, hi = self._range(raw)
        return lower_bound(self.buf, self.start, self.stride, lo, hi, raw)

    def find(self, raw: bytes) -> int | None:
        """The position of the id raw, by a C-level search of its (sub-)bucket.

        A match must also start on an id boundary: in a v1 index the ids are interleaved
        with offsets, and any table could hold raw's bytes straddling two ids.
        """
        # _range(raw), inlined: this runs once per object looked up, in the C engine's reads too.
        # Measured: 1.43 us a find against 1.62 us through _range (63,970 ids through the bench
        # repository's multi-pack-index; docs/performance.md, "Micro-optimisations").
        sub = self._sub[raw[0]] or self._subfanout(raw[0])
        if sub is not None:
            lo, hi = sub[raw[1]], sub[raw[1] + 1]
        else:
            lo, hi = self.bucket_range(raw[0])
        buf, start, stride = self.buf, self.start, self.stride
        end = start + hi * stride
        self.touched(FIND_TOUCH)
        p = buf.find(raw, start + lo * stride, end)
        while p >= 0 and (p - start) % stride:
            p = buf.find(raw, p + 1, end)
        return None if p < 0 else (p - start) // stride

    def prefix_matches(self, prefix: Prefix, limit: int) -> Iterator[bytes]:
        """Ids that start with prefix (an odd digit count is allowed), at most `limit` of them."""
        raw = prefix.raw
        self.touched(FIND_TOUCH)
        i = self.lower_bound(raw)
        found = 0
        while i < self.count and found < limit:
            candidate = self.id_at(i)
            if not candidate.startswith(raw):
                return
            if prefix.matches(candidate):
                found += 1
                yield candidate
            i += 1

    def ids_in_bucket(self, first_byte: int) -> list[bytes]:
        block = self.bucket_block(first_byte)
        n = self.raw_len
        return [block[k : k + n] for k in range(0, len(block), n)]

    def bucket_block(self, first_byte: int) -> bytes:
        """The bucket's ids, concatenated: for a packed table, one slice of the file."""
        lo, hi = self.bucket_range(first_byte)
        self.touched((hi - lo) * self.stride)
        if self.stride == self.raw_len:
            return self.buf[self.start + lo * self.stride : self.start + hi * self.stride]
        return b"".join(self.id_at(i) for i in range(lo, hi))

    def touched(self, nbytes: int) -> None:
        """Reads (whole buckets, many lookups) walk the whole table in time: a mapped table
        hands its pages back to the page cache (MADV_DONTNEED: the next touch maps them again,
        from memory) once about RESIDENT_BUDGET bytes were read, so a walk over every bucket of
        a 10M-object midx (280 MB of ids and offsets) does not keep all of it in each process's
        RSS. The whole mapping is released: the file's other tables are read in step."""
        self._touched += nbytes
        if self._touched > RESIDENT_BUDGET:
            self._touched = 0
            if isinstance(self.buf, mmap.mmap):
                self.buf.madvise(mmap.MADV_DONTNEED)


def lower_bound(buf, start: int, stride: int, lo: int, hi: int, key: bytes) -> int:
    """The first position k in [lo, hi) of a sorted table of records, record k at
    buf[start + k * stride], whose first len(key) bytes are >= key (hi if none): the one
    bisection of sorted ids, for .idx and multi-pack-index tables and the mount's listings."""
    n = len(key)
    while lo < hi:
        mid = (lo + hi) >> 1
        p = start + mid * stride
        if buf[p : p + n] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo
