"""The multi-pack-index (objects/pack/multi-pack-index): one sorted id table over many packs."""

from __future__ import annotations

import struct

from .errors import CorruptObject
from .fanout import SortedIds, parse_fanout
from .mapped_file import map_file, open_regular
from .oid import ObjectFormat

MAGIC = b"MIDX"
HEADER_SIZE = 12
TOC_ENTRY = 12
PNAM, OIDF, OIDL, OOFF, LOFF = (struct.unpack(">I", c)[0] for c in (b"PNAM", b"OIDF", b"OIDL", b"OOFF", b"LOFF"))
REQUIRED = (PNAM, OIDF, OIDL, OOFF)


class MultiPackIndex:
    """A validated multi-pack-index. Checks are O(chunks + packs), never O(objects):
    the whole-file checksum and entry order are left to a verify command, as git does."""

    def __init__(self, path, fmt: ObjectFormat):
        self.path = path
        self.format = fmt
        self.buf, self.stat = map_file(path)
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
        if n_base:
            raise self._corrupt("incremental base layers are not supported", 7)
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
            if self.version == 1 and names and name <= names[-1]:
                raise self._corrupt("pack names out of order", start + pos)
            names.append(name)
            pos = nul + 1
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
        self._ooff = ooff_start
        self._loff, loff_end = chunks.get(LOFF, (0, 0))
        self._n_large = (loff_end - self._loff) // 8 if LOFF in chunks else -1

    @property
    def count(self) -> int:
        return self.ids.count

    def entry_at(self, i: int) -> tuple[int, int] | None:
        """(pack id, offset) of position i; None when the entry itself is broken."""
        pack_id, offset = struct.unpack_from(">II", self.buf, self._ooff + 8 * i)
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

    def find(self, raw: bytes) -> tuple[int, int] | None:
        i = self.ids.find(raw)
        return None if i is None else self.entry_at(i)


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
