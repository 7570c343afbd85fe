"""Pack reverse indexes: entry offset -> index position, from a .rev file ('RIDX') or built in memory.

A .rev file lists the index positions of a pack's entries in pack order:

    'RIDX', u32 version 1, u32 hash id (1 SHA-1, 2 SHA-256),
    N x u32 index positions sorted by offset, the pack's checksum, this file's checksum.

git writes one beside every pack by default since 2.41 (pack.writeReverseIndex). Without a
usable one, the same table is built from the .idx on first use.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable

from ..errors import CorruptObject
from ..mapped_file import map_file
from ..oid import ObjectFormat

MAGIC = b"RIDX"
HEADER_SIZE = 12

OffsetAt = Callable[[int], int]  # index position -> entry offset (PackIndex.offset_at)


class ReverseIndexFile:
    """A validated .rev file: size, signature, version, hash id and pack checksum, all O(1).

    Its table is never scanned whole; a lookup bisects it, reading each probed position's
    offset from the .idx, so a damaged table can make a lookup miss but never answer wrong.
    """

    def __init__(self, path, fmt: ObjectFormat, count: int, pack_checksum: bytes, offset_at: OffsetAt):
        self.path = path
        self.count = count
        self._offset_at = offset_at
        self.buf, _ = map_file(path)
        h = fmt.raw_len
        buf = self.buf
        if len(buf) != HEADER_SIZE + 4 * count + 2 * h:
            raise self._corrupt(f"size {len(buf)} does not fit {count} objects")
        magic, version, hash_id = struct.unpack_from(">4sII", buf, 0)
        if magic != MAGIC:
            raise self._corrupt("bad signature", 0)
        if version != 1:
            raise self._corrupt(f"unsupported version {version}", 4)
        if hash_id != fmt.midx_hash_version:  # the same numbering as git's oid_version
            raise self._corrupt(f"hash id {hash_id} does not match the repository", 8)
        end = len(buf) - h
        if buf[end - h : end] != pack_checksum:
            raise self._corrupt("written for another pack (its pack checksum differs)", end - h)

    def _corrupt(self, reason: str, offset: int | None = None) -> CorruptObject:
        return CorruptObject(self.path, offset, f"reverse index: {reason}")

    def position_of(self, offset: int) -> int | None:
        """The index position of the entry at offset; None if no entry starts there."""
        buf, n, offset_at = self.buf, self.count, self._offset_at
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) >> 1
            (pos,) = struct.unpack_from(">I", buf, HEADER_SIZE + 4 * mid)
            if pos >= n:
                raise self._corrupt(f"position {pos} out of range", HEADER_SIZE + 4 * mid)
            at = offset_at(pos)
            if at < offset:
                lo = mid + 1
            elif at > offset:
                hi = mid
            else:
                return pos
        return None


class BuiltReverseIndex:
    """The same table, built from the .idx: O(n log n) once, then a bisect per lookup."""

    def __init__(self, count: int, offset_at: OffsetAt):
        offsets = [offset_at(i) for i in range(count)]
        order = sorted(range(count), key=offsets.__getitem__)
        self._offsets = array("Q", (offsets[i] for i in order))
        self._positions = array("I", order)

    def position_of(self, offset: int) -> int | None:
        k = bisect_right(self._offsets, offset) - 1
        if k >= 0 and self._offsets[k] == offset:
            return self._positions[k]
        return None
