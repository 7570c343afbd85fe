"""Pack index (.idx) files, versions 1 and 2: id -> offset in the matching .pack, and back."""

from __future__ import annotations

import logging
import struct

from ..errors import CorruptObject
from .fanout import SortedIds, parse_fanout
from ..mapped_file import map_file
from ..oid import ObjectFormat
from .reverse_index import BuiltReverseIndex, ReverseIndexFile

log = logging.getLogger("odb")

V2_MAGIC = b"\xfftOc"
FANOUT_BYTES = 1024


class PackIndex:
    """An opened, validated .idx file. Validation is O(1): sizes and the fanout only."""

    def __init__(self, path, fmt: ObjectFormat):
        self.path = path
        self.format = fmt
        self.buf, self.stat = map_file(path)
        self._rev_file: ReverseIndexFile | bool | None = None  # None: not tried; False: none usable
        self._built: BuiltReverseIndex | None = None
        if self.buf[:4] == V2_MAGIC:
            self._open_v2()
        else:
            self._open_v1()

    def _corrupt(self, reason: str, offset: int | None = None) -> CorruptObject:
        return CorruptObject(self.path, offset, reason)

    def _read_fanout(self, at: int) -> tuple[int, ...]:
        if len(self.buf) < at + FANOUT_BYTES:
            raise self._corrupt("index file is truncated")
        fanout = parse_fanout(self.buf, at)
        if fanout is None:
            raise self._corrupt("index fanout decreases", at)
        return fanout

    def _open_v1(self) -> None:
        h = self.format.raw_len
        fanout = self._read_fanout(0)
        n = fanout[255]
        if len(self.buf) != FANOUT_BYTES + n * (h + 4) + 2 * h:
            raise self._corrupt(f"v1 index size {len(self.buf)} does not fit {n} objects")
        self.version = 1
        self.ids = SortedIds(self.buf, FANOUT_BYTES + 4, h + 4, h, fanout)
        self._large = 0

    def _open_v2(self) -> None:
        h = self.format.raw_len
        if len(self.buf) < 8:
            raise self._corrupt("index file is truncated")
        (version,) = struct.unpack_from(">I", self.buf, 4)
        if version != 2:
            raise self._corrupt(f"unsupported index version {version}", 4)
        fanout = self._read_fanout(8)
        n = fanout[255]
        base = 8 + FANOUT_BYTES + n * (h + 8) + 2 * h
        extra = len(self.buf) - base
        # The large-offset table holds at most one entry per object but the first.
        if extra < 0 or extra % 8 or extra > 8 * max(n - 1, 0):
            raise self._corrupt(f"v2 index size {len(self.buf)} does not fit {n} objects")
        self.version = 2
        self.ids = SortedIds(self.buf, 8 + FANOUT_BYTES, h, h, fanout)
        self._offsets_at = 8 + FANOUT_BYTES + n * (h + 4)
        self._large_at = self._offsets_at + 4 * n
        self._large = extra // 8

    @property
    def count(self) -> int:
        return self.ids.count

    @property
    def pack_checksum(self) -> bytes:
        h = self.format.raw_len
        end = len(self.buf) - h
        return bytes(self.buf[end - h : end])

    def offset_at(self, i: int) -> int:
        if self.version == 1:
            return struct.unpack_from(">I", self.buf, FANOUT_BYTES + i * (self.format.raw_len + 4))[0]
        (off,) = struct.unpack_from(">I", self.buf, self._offsets_at + 4 * i)
        if off & 0x80000000:
            k = off & 0x7FFFFFFF
            if k >= self._large:
                raise self._corrupt(f"large offset index {k} out of range", self._offsets_at + 4 * i)
            (off,) = struct.unpack_from(">Q", self.buf, self._large_at + 8 * k)
        return off

    def entry_at(self, i: int) -> tuple[int, int] | None:
        """(0, offset) of position i, as a multi-pack-index entry reads; None when its large
        offset index is out of range."""
        try:
            return 0, self.offset_at(i)
        except CorruptObject:
            return None

    def entry_layout(self) -> tuple[int, int, bool, int, int, int]:
        """Where offset_at reads, for odb/_sizes.c (see MultiPackIndex.entry_layout)."""
        if self.version == 1:
            return FANOUT_BYTES, self.format.raw_len + 4, False, 1, 0, -1
        return self._offsets_at, 4, False, 1, self._large_at, self._large

    def find_offset(self, raw: bytes) -> int | None:
        i = self.ids.find(raw)
        return None if i is None else self.offset_at(i)

    @property
    def rev_path(self) -> str:
        return self.path[: -len(".idx")] + ".rev"

    def id_at_offset(self, offset: int) -> bytes | None:
        """The id of the entry starting at `offset` (for naming OFS_DELTA bases): through the
        pack's .rev file when it has a valid one, else a reverse index built on first use."""
        pos = None
        rev = self._rev_file if self._rev_file is not None else self._open_rev_file()
        if rev:
            try:
                pos = rev.position_of(offset)
            except CorruptObject as e:
                log.warning("ignoring a damaged reverse index: %s", e)
                self._rev_file = False
        if pos is None:
            # A miss through the file is confirmed by the built table: a damaged file can
            # only lose entries, and a miss is rare (an offset no entry starts at).
            pos = self._built_reverse().position_of(offset)
        return None if pos is None else self.ids.id_at(pos)

    def _open_rev_file(self) -> ReverseIndexFile | bool:
        try:
            rev = ReverseIndexFile(self.rev_path, self.format, self.count, self.pack_checksum, self.offset_at)
        except FileNotFoundError:
            rev = False
        except (CorruptObject, OSError) as e:
            log.warning("ignoring the reverse index, building one instead: %s", e)
            rev = False
        self._rev_file = rev
        return rev

    def _built_reverse(self) -> BuiltReverseIndex:
        # Built on first use only (xattrs ask for it), never at open: O(n log n).
        if self._built is None:
            self._built = BuiltReverseIndex(self.count, self.offset_at)
        return self._built

    def close(self) -> None:
        close = getattr(self.buf, "close", None)
        if close:
            try:
                close()
            except BufferError:
                pass  # a reader still holds a view; the map goes when it does
