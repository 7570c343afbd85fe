"""Damage for the reliability tests: flipped bytes, truncation, rewritten multi-pack-index chunks,
and hand-made packs, indexes and loose objects that no git would write."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HASH_NAMES = {20: "sha1", 32: "sha256"}
TYPE_CODES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
OFS_DELTA = 6
REF_DELTA = 7


# ---- plain file damage ----------------------------------------------------------------------------


def _writable(path: Path) -> None:
    # git writes packs, indexes and loose objects 0444; the copies are ours to break.
    os.chmod(path, 0o644)


def flip(path: Path, offset: int, mask: int = 0xFF) -> None:
    """XORs the byte at offset (negative: from the end) with mask."""
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= mask
    replace(path, bytes(data))


def truncate(path: Path, size: int) -> None:
    """Cuts the file to size bytes (negative: drops that many bytes from the end)."""
    data = Path(path).read_bytes()
    replace(path, data[:size])


def replace(path: Path, data: bytes) -> None:
    """Rewrites the file in place, keeping its inode (what an in-place disk corruption does)."""
    path = Path(path)
    if path.exists():
        _writable(path)
    path.write_bytes(data)


def checksum(data: bytes, raw_len: int) -> bytes:
    return hashlib.new(HASH_NAMES[raw_len], data).digest()


def with_trailer(body: bytes, raw_len: int) -> bytes:
    """body followed by its own checksum, as .pack, .idx and multi-pack-index files end."""
    return body + checksum(body, raw_len)


def hash_object(kind: str, data: bytes, raw_len: int = 20) -> bytes:
    return checksum(b"%s %d\0" % (kind.encode(), len(data)) + data, raw_len)


# ---- the multi-pack-index -------------------------------------------------------------------------


def midx_path(objects_dir: Path) -> Path:
    return Path(objects_dir) / "pack" / "multi-pack-index"


@dataclass
class Midx:
    """A multi-pack-index taken apart into its header and chunks, to be edited and written back."""

    raw_len: int
    version: int
    hash_version: int
    base_count: int
    n_packs: int
    chunks: list[list] = field(default_factory=list)  # [chunk id (4 bytes), data] in file order
    magic: bytes = b"MIDX"

    @classmethod
    def read(cls, path: Path, raw_len: int = 20) -> "Midx":
        data = Path(path).read_bytes()
        magic, version, hash_version, n_chunks, base, n_packs = struct.unpack_from(">4sBBBBI", data, 0)
        toc = [struct.unpack_from(">4sQ", data, 12 + 12 * k) for k in range(n_chunks + 1)]
        chunks = [[cid, data[start:toc[k + 1][1]]] for k, (cid, start) in enumerate(toc[:-1])]
        return cls(raw_len, version, hash_version, base, n_packs, chunks, magic)

    def chunk(self, cid: bytes) -> bytes:
        for c in self.chunks:
            if c[0] == cid:
                return c[1]
        raise KeyError(cid)

    def set_chunk(self, cid: bytes, data: bytes) -> None:
        for c in self.chunks:
            if c[0] == cid:
                c[1] = data
                return
        self.chunks.append([cid, data])

    def drop_chunk(self, cid: bytes) -> None:
        self.chunks = [c for c in self.chunks if c[0] != cid]

    def toc(self) -> list[tuple[bytes, int]]:
        """The table of contents this layout gets: (id, offset) per chunk, then (0, end)."""
        pos = 12 + 12 * (len(self.chunks) + 1)
        out = []
        for cid, data in self.chunks:
            out.append((cid, pos))
            pos += len(data)
        out.append((b"\0\0\0\0", pos))
        return out

    def encode(self, *, n_chunks: int | None = None, toc: list[tuple[bytes, int]] | None = None,
               fix_checksum: bool = True) -> bytes:
        """The file bytes. n_chunks and toc let a test make the header or table lie."""
        toc = self.toc() if toc is None else toc
        n = len(self.chunks) if n_chunks is None else n_chunks
        head = struct.pack(">4sBBBBI", self.magic, self.version, self.hash_version, n & 0xFF,
                           self.base_count, self.n_packs)
        body = head + b"".join(struct.pack(">4sQ", cid, off) for cid, off in toc)
        body += b"".join(data for _, data in self.chunks)
        return with_trailer(body, self.raw_len) if fix_checksum else body + b"\0" * self.raw_len

    def write(self, path: Path, **kw) -> None:
        replace(path, self.encode(**kw))

    # -- chunk contents --

    def pack_names(self) -> list[bytes]:
        return self.chunk(b"PNAM").rstrip(b"\0").split(b"\0")

    def ooff(self) -> list[tuple[int, int]]:
        data = self.chunk(b"OOFF")
        return [struct.unpack_from(">II", data, 8 * k) for k in range(len(data) // 8)]

    def ids(self) -> list[bytes]:
        data, h = self.chunk(b"OIDL"), self.raw_len
        return [data[k:k + h] for k in range(0, len(data), h)]


def encode_pnam(names: list[bytes]) -> bytes:
    """NUL-terminated names, padded to a multiple of 4 as git writes them."""
    data = b"".join(n + b"\0" for n in names)
    return data + b"\0" * (-len(data) % 4)


def encode_ooff(entries: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack(">II", p, o) for p, o in entries)


# ---- packs ----------------------------------------------------------------------------------------


def entry_header(type_code: int, size: int) -> bytes:
    """A pack entry header: type and the inflated size, 4 bits then 7 per byte."""
    out = bytearray()
    c = (type_code << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    out.append(c)
    return bytes(out)


def ofs_distance(distance: int) -> bytes:
    """git's encoding of an OFS_DELTA base distance (each continuation adds one)."""
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def insert_delta(base_size: int, target: bytes) -> bytes:
    """A delta that builds target from literal inserts alone (the base only has to have base_size)."""
    out = bytearray(varint(base_size) + varint(len(target)))
    for k in range(0, len(target), 127):
        piece = target[k:k + 127]
        out.append(len(piece))
        out += piece
    return bytes(out)


def copy_delta(base_size: int, result_size: int, copies: list[tuple[int, int]], tail: bytes = b"") -> bytes:
    """A delta of copy instructions (offset, size) then a literal tail; sizes are written as given."""
    out = bytearray(varint(base_size) + varint(result_size))
    for off, size in copies:
        op = 0x80
        args = bytearray()
        for k in range(4):
            if (off >> (8 * k)) & 0xFF:
                op |= 1 << k
                args.append((off >> (8 * k)) & 0xFF)
        for k in range(3):
            if (size >> (8 * k)) & 0xFF:
                op |= 0x10 << k
                args.append((size >> (8 * k)) & 0xFF)
        out.append(op)
        out += args
    for k in range(0, len(tail), 127):
        out.append(len(tail[k:k + 127]))
        out += tail[k:k + 127]
    return bytes(out)


class PackBuilder:
    """Builds a .pack entry by entry, with an .idx v2 that names each entry by the id given.

    The ids are whatever the test says, so a pack can claim objects it cannot rebuild, and
    deltas can point anywhere, including at themselves.
    """

    def __init__(self, raw_len: int = 20, version: int = 2):
        self.raw_len = raw_len
        self.version = version
        self.body = bytearray()
        self.index: list[tuple[bytes, int, int]] = []  # (raw id, offset, crc32)
        self.count_override: int | None = None

    @property
    def next_offset(self) -> int:
        return 12 + len(self.body)

    def raw(self, entry: bytes, oid: bytes | None) -> int:
        """Appends entry bytes as they are; oid None leaves the entry out of the index."""
        offset = self.next_offset
        self.body += entry
        if oid is not None:
            self.index.append((oid, offset, zlib.crc32(entry)))
        return offset

    def whole(self, kind: str, data: bytes, *, oid: bytes | None = None, claimed_size: int | None = None,
              compressed: bytes | None = None) -> tuple[int, bytes]:
        """A non-delta entry; (offset, id). claimed_size and compressed let the header lie."""
        if oid is None:
            oid = hash_object(kind, data, self.raw_len)
        size = len(data) if claimed_size is None else claimed_size
        z = zlib.compress(data) if compressed is None else compressed
        return self.raw(entry_header(TYPE_CODES[kind], size) + z, oid), oid

    def ofs_delta(self, base_offset: int, delta: bytes, oid: bytes, *, at: int | None = None,
                  claimed_size: int | None = None) -> int:
        """An OFS_DELTA entry; base_offset may be anything, even this entry's own offset."""
        at = self.next_offset if at is None else at
        size = len(delta) if claimed_size is None else claimed_size
        entry = entry_header(OFS_DELTA, size) + ofs_distance(at - base_offset) + zlib.compress(delta)
        return self.raw(entry, oid)

    def ref_delta(self, base: bytes, delta: bytes, oid: bytes, *, claimed_size: int | None = None) -> int:
        size = len(delta) if claimed_size is None else claimed_size
        return self.raw(entry_header(REF_DELTA, size) + base + zlib.compress(delta), oid)

    def pack_bytes(self) -> bytes:
        count = len(self.index) if self.count_override is None else self.count_override
        return with_trailer(b"PACK" + struct.pack(">II", self.version, count) + bytes(self.body),
                            self.raw_len)

    def write(self, pack_dir: Path) -> tuple[Path, Path]:
        """Writes pack-<checksum>.pack and its .idx into pack_dir; returns both paths."""
        data = self.pack_bytes()
        trailer = data[-self.raw_len:]
        pack_dir = Path(pack_dir)
        pack_dir.mkdir(parents=True, exist_ok=True)
        stem = pack_dir / f"pack-{trailer.hex()}"
        pack, idx = stem.with_suffix(".pack"), stem.with_suffix(".idx")
        replace(pack, data)
        replace(idx, idx_v2(self.index, trailer, self.raw_len))
        return pack, idx


def idx_v2(entries: list[tuple[bytes, int, int]], pack_checksum: bytes, raw_len: int = 20) -> bytes:
    """A version 2 pack index over (raw id, offset, crc32) entries."""
    entries = sorted(entries)
    fanout = [0] * 256
    for oid, _, _ in entries:
        fanout[oid[0]] += 1
    total = 0
    for k in range(256):
        total += fanout[k]
        fanout[k] = total
    small, large = [], []
    for _, off, _ in entries:
        if off < 0x80000000:
            small.append(off)
        else:
            small.append(0x80000000 | len(large))
            large.append(off)
    body = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout)
    body += b"".join(oid for oid, _, _ in entries)
    body += b"".join(struct.pack(">I", crc) for _, _, crc in entries)
    body += b"".join(struct.pack(">I", o) for o in small)
    body += b"".join(struct.pack(">Q", o) for o in large)
    return with_trailer(body + pack_checksum, raw_len)


# ---- loose objects --------------------------------------------------------------------------------


def write_loose(objects_dir: Path, oid_hex: str, payload: bytes, *, compress: bool = True) -> Path:
    """Writes objects/xx/yyy... holding payload (header included), zlib-compressed unless told."""
    path = Path(objects_dir) / oid_hex[:2] / oid_hex[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    replace(path, zlib.compress(payload) if compress else payload)
    return path


def loose_path(objects_dir: Path, oid_hex: str) -> Path:
    return Path(objects_dir) / oid_hex[:2] / oid_hex[2:]


# ---- where an object lives ------------------------------------------------------------------------


def pack_entries(idx_path: Path, raw_len: int = 20) -> dict[str, int]:
    """id -> offset, read from a version 2 .idx (for choosing what to damage)."""
    data = Path(idx_path).read_bytes()
    if data[:4] != b"\xfftOc":
        raise ValueError(f"{idx_path}: only version 2 indexes are read here")
    n = struct.unpack_from(">I", data, 8 + 1020)[0]
    ids_at = 8 + 1024
    offs_at = ids_at + n * raw_len + 4 * n
    large_at = offs_at + 4 * n
    out = {}
    for i in range(n):
        oid = data[ids_at + i * raw_len: ids_at + (i + 1) * raw_len].hex()
        (off,) = struct.unpack_from(">I", data, offs_at + 4 * i)
        if off & 0x80000000:
            (off,) = struct.unpack_from(">Q", data, large_at + 8 * (off & 0x7FFFFFFF))
        out[oid] = off
    return out


def entry_spans(idx_path: Path, pack_size: int, raw_len: int = 20) -> dict[str, tuple[int, int]]:
    """id -> (start, end) of each entry in the .pack, ends taken from the next entry's start."""
    entries = pack_entries(idx_path, raw_len)
    starts = sorted(entries.values()) + [pack_size - raw_len]
    nxt = {starts[k]: starts[k + 1] for k in range(len(starts) - 1)}
    return {oid: (off, nxt[off]) for oid, off in entries.items()}


def midx_loaded(store) -> bool:
    """Whether the store's own objects directory is using its multi-pack-index.

    The one place the tests look inside odb: a damage test that only checked the objects
    would pass just as well if odb never loaded any midx.
    """
    return bool(store._dirs[0].packs._snap.midx.layers)


def midx_layers(store) -> int:
    """How many multi-pack-index layers the store's own objects directory reads through:
    0 (plain pack scanning), 1 (a multi-pack-index), or the length of a chain."""
    return len(store._dirs[0].packs._snap.midx.layers)


def midx_chained(store) -> bool:
    return store._dirs[0].packs._snap.midx.chained


# ---- the damage matrix: multi-pack-index cases that must make odb ignore the midx -----------------


def _bad_signature(m: Midx):
    m.magic = b"MIDY"


def _bad_version(m: Midx):
    m.version = 3


def _version_zero(m: Midx):
    m.version = 0


def _bad_hash_version(m: Midx):
    m.hash_version = 3 - m.hash_version  # SHA-1 <-> SHA-256: the other repository's format


def _count_too_small(m: Midx):
    return {"n_chunks": len(m.chunks) - 1}


def _count_too_large(m: Midx):
    return {"n_chunks": len(m.chunks) + 1}


def _count_zero(m: Midx):
    return {"n_chunks": 0}


def _misaligned_offset(m: Midx):
    toc = m.toc()
    toc[1] = (toc[1][0], toc[1][1] + 2)
    return {"toc": toc}


def _decreasing_offset(m: Midx):
    toc = m.toc()
    toc[1], toc[2] = (toc[1][0], toc[2][1]), (toc[2][0], toc[1][1])
    return {"toc": toc}


def _offset_past_trailer(m: Midx):
    toc = m.toc()
    toc[-1] = (toc[-1][0], toc[-1][1] + 4)
    return {"toc": toc}


def _zero_id_before_end(m: Midx):
    toc = m.toc()
    toc[1] = (b"\0\0\0\0", toc[1][1])
    return {"toc": toc}


def _duplicate_chunk(m: Midx):
    m.chunks.append([b"OIDF", m.chunk(b"OIDF")])


def _missing_oidl(m: Midx):
    m.drop_chunk(b"OIDL")


def _oidf_wrong_size(m: Midx):
    m.set_chunk(b"OIDF", m.chunk(b"OIDF")[:-4])


def _oidf_too_long(m: Midx):
    m.set_chunk(b"OIDF", m.chunk(b"OIDF") + m.chunk(b"OIDF")[-4:])


def _oidl_wrong_size(m: Midx):
    m.set_chunk(b"OIDL", m.chunk(b"OIDL")[:-20])


def _ooff_wrong_size(m: Midx):
    m.set_chunk(b"OOFF", m.chunk(b"OOFF")[:-8])


def _decreasing_fanout(m: Midx):
    fanout = list(struct.unpack(">256I", m.chunk(b"OIDF")))
    k = next(i for i in range(1, 255) if fanout[i] > 0)
    fanout[k] = fanout[k - 1] - 1 if fanout[k - 1] else 0
    fanout[k + 1] = fanout[k] + 5 if fanout[k] == 0 else fanout[k + 1]
    # Make sure it really decreases somewhere, whatever the fixture's ids look like.
    fanout[200] = fanout[255] + 1 if fanout[199] > fanout[255] + 1 else fanout[199] + 1
    fanout[201] = fanout[200] - 1
    m.set_chunk(b"OIDF", struct.pack(">256I", *fanout))


def _pnam_missing_nul(m: Midx):
    data = m.chunk(b"PNAM").rstrip(b"\0")
    m.set_chunk(b"PNAM", data + b"x" * (-len(data) % 4 or 4))


def _pnam_out_of_order(m: Midx):
    names = m.pack_names()
    names[0], names[1] = names[1], names[0]
    m.set_chunk(b"PNAM", encode_pnam(names))


def _pnam_duplicate_name(m: Midx):
    names = m.pack_names()
    names[1] = names[0]
    m.set_chunk(b"PNAM", encode_pnam(names))


def _pnam_too_few_names(m: Midx):
    m.n_packs += 1


def _pnam_dot_dot(m: Midx):
    names = m.pack_names()
    names[0] = b"../" + names[0]
    m.set_chunk(b"PNAM", encode_pnam(names))


def _pnam_slash(m: Midx):
    names = m.pack_names()
    names[0] = b"/tmp/" + names[0]
    m.set_chunk(b"PNAM", encode_pnam(names))


def _pnam_backslash(m: Midx):
    names = m.pack_names()
    names[0] = b"..\\" + names[0]
    m.set_chunk(b"PNAM", encode_pnam(names))


def _pnam_not_idx(m: Midx):
    names = m.pack_names()
    names[-1] = names[-1][:-4] + b".pack"
    m.set_chunk(b"PNAM", encode_pnam(names))


def _incremental_base(m: Midx):
    m.base_count = 1


BAD_MIDX = {
    "bad-signature": _bad_signature,
    "bad-version": _bad_version,
    "version-zero": _version_zero,
    "bad-hash-version": _bad_hash_version,
    "chunk-count-too-small": _count_too_small,
    "chunk-count-too-large": _count_too_large,
    "chunk-count-zero": _count_zero,
    "misaligned-chunk-offset": _misaligned_offset,
    "decreasing-chunk-offset": _decreasing_offset,
    "chunk-past-trailer": _offset_past_trailer,
    "zero-chunk-id-before-end": _zero_id_before_end,
    "duplicate-chunk": _duplicate_chunk,
    "missing-required-chunk": _missing_oidl,
    "oidf-short": _oidf_wrong_size,
    "oidf-long": _oidf_too_long,
    "oidl-wrong-size": _oidl_wrong_size,
    "ooff-wrong-size": _ooff_wrong_size,
    "decreasing-fanout": _decreasing_fanout,
    "pnam-missing-nul": _pnam_missing_nul,
    "pnam-out-of-order-v1": _pnam_out_of_order,
    "pnam-duplicate-name-v1": _pnam_duplicate_name,
    "pnam-fewer-names-than-packs": _pnam_too_few_names,
    "pnam-dot-dot": _pnam_dot_dot,
    "pnam-slash": _pnam_slash,
    "pnam-backslash": _pnam_backslash,
    "pnam-not-an-idx": _pnam_not_idx,
    "incremental-base-count": _incremental_base,
}


def damage_midx(objects_dir: Path, case: str, raw_len: int = 20) -> None:
    """Applies BAD_MIDX[case] to the multi-pack-index of objects_dir (raw_len 32: SHA-256)."""
    path = midx_path(objects_dir)
    m = Midx.read(path, raw_len)
    kw = BAD_MIDX[case](m) or {}
    m.write(path, **kw)


# ---- which objects a damage reaches ---------------------------------------------------------------


def delta_bases(git_dir: Path) -> dict[str, str]:
    """delta id -> base id over every pack of a repository, as git verify-pack -v reports them."""
    out = {}
    for idx in sorted((Path(git_dir) / "objects" / "pack").glob("*.idx")):
        text = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True, text=True,
                              check=True, env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null",
                                               "GIT_CONFIG_NOSYSTEM": "1"}).stdout
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 7:
                out[fields[0]] = fields[6]
    return out


def dependents(bases: dict[str, str], damaged: set[str]) -> set[str]:
    """The damaged ids and every object whose delta chain passes through one of them."""
    out = set(damaged)
    for oid in bases:
        chain, cur = [], oid
        while cur in bases and cur not in out and len(chain) < 10_000:
            chain.append(cur)
            cur = bases[cur]
        if cur in out:
            out.update(chain)
    return out


def midx_packs(objects_dir: Path) -> tuple[list[Path], list[Path]]:
    """(.pack paths the midx names, .pack paths outside it)."""
    named = {n.decode()[:-4] + ".pack" for n in Midx.read(midx_path(objects_dir)).pack_names()}
    packs = sorted((Path(objects_dir) / "pack").glob("*.pack"))
    return [p for p in packs if p.name in named], [p for p in packs if p.name not in named]


def ids_in(pack: Path) -> set[str]:
    return set(pack_entries(pack.with_suffix(".idx")))


def entry_of(pack: Path, want) -> tuple[str, int, int]:
    """(id, start, end) of the first entry of pack for which want(id) holds."""
    spans = entry_spans(pack.with_suffix(".idx"), pack.stat().st_size)
    for oid, (start, end) in sorted(spans.items(), key=lambda kv: kv[1]):
        if want(oid):
            return oid, start, end
    raise LookupError(f"no such entry in {pack.name}")
