"""The multi-pack-index format (objects/pack/multi-pack-index, or one layer of a chain):
one sorted id table over many packs."""

from __future__ import annotations

import struct

from ..errors import CorruptObject
from .fanout import SortedIds, parse_fanout
from ..mapped_file import map_file, open_regular
from ..oid import ObjectFormat

MAGIC = b"MIDX"
HEADER_SIZE = 12
TOC_ENTRY = 12
PNAM, OIDF, OIDL, OOFF, LOFF, RIDX = (struct.unpack(">I", c)[0]
                                     for c in (b"PNAM", b"OIDF", b"OIDL", b"OOFF", b"LOFF", b"RIDX"))
REQUIRED = (PNAM, OIDF, OIDL, OOFF)


class MultiPackIndex:
    """A validated multi-pack-index. Checks are O(chunks + packs), never O(objects):
    the whole-file checksum and entry order are left to a verify command, as git does.

    `layer` is its place in an incremental chain (0 for the base, and for a plain
    multi-pack-index); `base_objects` counts the objects of the layers below it, which is
    where its positions start in the chain's one id space (its RIDX chunk counts from there).
    """

    def __init__(self, path, fmt: ObjectFormat, *, layer: int = 0, base_objects: int = 0):
        self.path = path
        self.format = fmt
        self.layer = layer
        self.base_objects = base_objects
        self.buf, self.stat = map_file(path)
        self._preferred: int | None = None
        self._parse()

    def _corrupt(self, reason: str, offset: int | None = None) -> CorruptObject:
        return CorruptObject(self.path, offset, f"multi-pack-index: {reason}")

    def _parse(self) -> None:
        buf, h = self.buf, self.format.raw_len
        if len(buf) < HEADER_SIZE + h:
            raise self._corrupt("file is too short")
        magic, version, hash_version, n_chunks, n_base, n_packs = struct.unpack_from(">4sBBBBI", buf, 0)
        if magic != MAGIC:
            raise self._corrupt("bad signature", 0)
        if version not in (1, 2):
            raise self._corrupt(f"unsupported version {version}", 4)
        if hash_version != self.format.midx_hash_version:
            raise self._corrupt(f"hash version {hash_version} does not match the repository", 5)
        # git writes 0 here in every layer of a chain (the byte is "currently always zero") and
        # never reads it; a layer may also count its bases. Anything else is not a layer we know.
        if n_base not in (0, self.layer):
            raise self._corrupt(f"base count {n_base} does not fit layer {self.layer} of its chain", 7)
        self.version = version
        self.checksum = bytes(buf[len(buf) - h :])
        chunks = self._read_toc(n_chunks)
        self.pack_names = self._read_pack_names(chunks[PNAM], n_packs)
        self._read_objects(chunks)

    def _read_toc(self, n_chunks: int) -> dict[int, tuple[int, int]]:
        buf = self.buf
        trailer = len(buf) - self.format.raw_len
        toc_end = HEADER_SIZE + (n_chunks + 1) * TOC_ENTRY
        if toc_end > trailer:
            raise self._corrupt(f"chunk count {n_chunks} does not fit the file", 6)
        entries = [struct.unpack_from(">IQ", buf, HEADER_SIZE + k * TOC_ENTRY) for k in range(n_chunks + 1)]
        if entries[-1][0] != 0:
            raise self._corrupt("chunk table is not terminated (chunk count too small)", 6)
        chunks: dict[int, tuple[int, int]] = {}
        for k in range(n_chunks):
            cid, start = entries[k]
            end = entries[k + 1][1]
            where = HEADER_SIZE + k * TOC_ENTRY
            if cid == 0:
                raise self._corrupt("chunk table ends early (chunk count too large)", where)
            if start % 4 or start < toc_end:
                raise self._corrupt("misaligned chunk offset", where)
            if end < start or end > trailer:
                raise self._corrupt("chunk offsets decrease or run past the trailer", where)
            if cid in chunks:
                raise self._corrupt("duplicate chunk id", where)
            chunks[cid] = (start, end)  # ids we do not know (RIDX, BTMP, ...) are simply unused
        for cid in REQUIRED:
            if cid not in chunks:
                raise self._corrupt(f"missing required chunk {struct.pack('>I', cid).decode('latin-1')!r}")
        return chunks

    def _read_pack_names(self, span: tuple[int, int], n_packs: int) -> list[str]:
        start, end = span
        raw = bytes(self.buf[start:end])
        names = []
        pos = 0
        for _ in range(n_packs):
            nul = raw.find(b"\0", pos)
            if nul < 0:
                raise self._corrupt("pack name without its NUL", start + pos)
            name = raw[pos:nul].decode("utf-8", "replace")
            # A name is a basename in this directory; anything that walks elsewhere is hostile.
            if not name.endswith(".idx") or "/" in name or "\\" in name or ".." in name:
                raise self._corrupt(f"bad pack name {name!r}", start + pos)
            # Version 2 may list packs in any order (a compacted chain keeps its layers' order).
            if self.version == 1 and names and name <= names[-1]:
                raise self._corrupt("pack names out of order", start + pos)
            names.append(name)
            pos = nul + 1
        if len(set(names)) != len(names):
            raise self._corrupt("a pack is named twice", start)
        return names

    def _read_objects(self, chunks: dict[int, tuple[int, int]]) -> None:
        h = self.format.raw_len
        oidf_start, oidf_end = chunks[OIDF]
        if oidf_end - oidf_start != 1024:
            raise self._corrupt("OIDF chunk is not 1024 bytes", oidf_start)
        fanout = parse_fanout(self.buf, oidf_start)
        if fanout is None:
            raise self._corrupt("fanout decreases", oidf_start)
        n = fanout[255]
        oidl_start, oidl_end = chunks[OIDL]
        if oidl_end - oidl_start != n * h:
            raise self._corrupt("OIDL chunk has the wrong size", oidl_start)
        ooff_start, ooff_end = chunks[OOFF]
        if ooff_end - ooff_start != n * 8:
            raise self._corrupt("OOFF chunk has the wrong size", ooff_start)
        self.ids = SortedIds(self.buf, oidl_start, h, h, fanout)
        self.ooff = ooff_start
        self._loff, loff_end = chunks.get(LOFF, (0, 0))
        self._n_large = (loff_end - self._loff) // 8 if LOFF in chunks else -1
        # The reverse index (pseudo-pack order) is optional; a wrong-sized one is unused, as
        # git then builds its own: the rest of the file is still good.
        ridx_start, ridx_end = chunks.get(RIDX, (0, 0))
        self._ridx = ridx_start if ridx_end - ridx_start == 4 * n and n else None

    @property
    def count(self) -> int:
        return self.ids.count

    def entry_at(self, i: int) -> tuple[int, int] | None:
        """(pack id, offset) of position i; None when the entry itself is broken."""
        pack_id, offset = struct.unpack_from(">II", self.buf, self.ooff + 8 * i)
        # Bit 31 means "index into LOFF" only when a LOFF chunk exists; otherwise the
        # raw u32 is the offset. (The 2020 libgit2 change got this wrong.)
        if offset & 0x80000000 and self._n_large >= 0:
            k = offset & 0x7FFFFFFF
            if k >= self._n_large:
                return None
            (offset,) = struct.unpack_from(">Q", self.buf, self._loff + 8 * k)
        if pack_id >= len(self.pack_names):
            return None
        return pack_id, offset

    def entry_layout(self) -> tuple[int, int, bool, int, int, int]:
        """Where entry_at reads, for odb/_sizes.c: (first entry, entry size, whether entries
        start with a pack id, pack count, large offset table, its length or -1 without one)."""
        return self.ooff, 8, True, len(self.pack_names), self._loff, self._n_large

    def find(self, raw: bytes) -> tuple[int, int] | None:
        i = self.ids.find(raw)
        return None if i is None else self.entry_at(i)

    # -- the RIDX chunk: positions in pseudo-pack order ----------------------------------------

    @property
    def has_reverse_index(self) -> bool:
        return self._ridx is not None

    def drop_reverse_index(self) -> None:
        self._ridx = None

    def position_at_offset(self, pack_id: int, offset: int) -> int | None:
        """The position of the object this index serves from pack_id at offset, found through
        the RIDX chunk; None without one, or when the index serves that object from another pack.

        Pseudo-pack order sorts by (not in the preferred pack, pack id, offset) (git's
        midx_pack_order). The preferred pack is the one of the first object in that order.
        A damaged chunk can only make this miss: a hit is the entry's own (pack, offset).
        """
        if self._ridx is None:
            return None
        preferred = self._preferred
        if preferred is None:
            first = self._ridx_entry(0)
            self._preferred = preferred = first[1][0]
        want = (pack_id != preferred, pack_id, offset)
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) >> 1
            pos, (p, off) = self._ridx_entry(mid)
            key = (p != preferred, p, off)
            if key < want:
                lo = mid + 1
            elif key > want:
                hi = mid
            else:
                return pos
        return None

    def _ridx_entry(self, k: int) -> tuple[int, tuple[int, int]]:
        (pos,) = struct.unpack_from(">I", self.buf, self._ridx + 4 * k)
        pos -= self.base_objects  # a chain layer counts positions across the layers below it
        if not 0 <= pos < self.count:
            raise self._corrupt(f"RIDX entry {k} names position {pos} out of range", self._ridx + 4 * k)
        entry = self.entry_at(pos)
        if entry is None:
            raise self._corrupt(f"RIDX entry {k} names a broken entry", self._ridx + 4 * k)
        return pos, entry


def read_checksum(path, fmt: ObjectFormat) -> tuple[int, bytes] | None:
    """(size, trailing checksum) of the file at path, without mapping it; None if absent."""
    try:
        with open(open_regular(path), "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            if size < fmt.raw_len:
                return size, b""
            f.seek(size - fmt.raw_len)
            return size, f.read(fmt.raw_len)
    except OSError:
        return None
