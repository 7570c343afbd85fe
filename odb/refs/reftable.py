"""The reftable format (extensions.refStorage=reftable): a stack of tables of sorted ref records.

Documentation/technical/reftable.adoc in git.git is the specification. Only ref records are
read: obj and log blocks are skipped. Every length, offset and varint is checked against the
file; a table that contradicts its format raises CorruptObject (a stack read with a table
left out could resurrect a deleted ref, so a bad table is an error, not a skip).
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Iterator, NamedTuple

from ..errors import CorruptObject
from ..mapped_file import file_identity, map_file, open_regular
from ..oid import SHA1, SHA256, ObjectFormat

MAGIC = b"REFT"
HEADER_SIZE = {1: 24, 2: 28}
FOOTER_SIZE = {1: 68, 2: 72}
HASH_IDS = {b"sha1": SHA1, b"s256": SHA256}
BLOCK_TYPES = b"rigo"
REF_BLOCK, INDEX_BLOCK = ord("r"), ord("i")
DELETION, VAL1, VAL2, SYMREF = 0, 1, 2, 3
MAX_INDEX_LEVELS = 8  # a multi-level ref index deeper than this is refused (no loops)
MAX_TABLES_LIST = 1 << 20
MAX_TABLE_RETRIES = 3  # reftable readers re-read tables.list when a compaction removed a table


class RefRecord(NamedTuple):
    """One ref record. value_type DELETION has no value; SYMREF has target; VAL1 and VAL2
    have oid, and VAL2 also the peeled id of the annotated tag it names."""

    name: bytes
    value_type: int
    oid: bytes | None
    peeled: bytes | None
    target: bytes | None
    update_index: int


class Block(NamedTuple):
    offset: int  # of the block in the file (0 for the first, which holds the file header)
    start: int  # of its first record
    restarts: int  # where its restart table starts: records end here
    restart_offsets: frozenset
    full_size: int  # block_len, or the aligned block size: where the next block is


def varint(buf, pos: int, end: int, path) -> tuple[int, int]:
    """reftable's varint (pack files' ofs-delta encoding), refusing overflow past 64 bits."""
    if pos >= end:
        raise CorruptObject(path, pos, "reftable: varint runs past its block")
    c = buf[pos]
    pos += 1
    value = c & 0x7F
    while c & 0x80:
        value += 1
        if value >= 1 << 57:
            raise CorruptObject(path, pos, "reftable: varint overflows 64 bits")
        if pos >= end:
            raise CorruptObject(path, pos, "reftable: varint runs past its block")
        c = buf[pos]
        pos += 1
        value = (value << 7) | (c & 0x7F)
    return value, pos


def _be24(buf, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 3], "big")


class Reftable:
    """One table file, checked at open: header, footer, footer CRC, hash id, section offsets."""

    def __init__(self, path: str, fmt: ObjectFormat):
        self.path = path
        self.format = fmt
        self.buf, st = map_file(path)
        self.identity = file_identity(st)
        buf, size = self.buf, len(self.buf)
        if size < HEADER_SIZE[1] or buf[:4] != MAGIC:
            raise CorruptObject(path, 0, "not a reftable (no REFT header)")
        self.version = buf[4]
        if self.version not in HEADER_SIZE:
            raise CorruptObject(path, 4, f"reftable version {self.version} is not 1 or 2")
        self.header_size = HEADER_SIZE[self.version]
        footer_size = FOOTER_SIZE[self.version]
        if size < self.header_size + footer_size:
            raise CorruptObject(path, 0, "reftable shorter than its header and footer")
        self.end = size - footer_size  # blocks lie in [0, end)
        footer = bytes(buf[self.end:])
        if footer[: self.header_size] != bytes(buf[: self.header_size]):
            raise CorruptObject(path, self.end, "reftable footer does not repeat the header")
        if zlib.crc32(footer[:-4]) != struct.unpack(">I", footer[-4:])[0]:
            raise CorruptObject(path, size - 4, "reftable footer CRC mismatch")
        table_format = SHA1
        if self.version == 2:
            table_format = HASH_IDS.get(footer[24:28])
            if table_format is None:
                raise CorruptObject(path, 24, f"reftable hash id {footer[24:28]!r} is unknown")
        if table_format != fmt:
            raise CorruptObject(path, 0, f"reftable of {table_format.name} ids in a {fmt.name} repository")
        self.block_size = _be24(footer, 5)
        self.min_update_index = struct.unpack_from(">Q", footer, 8)[0]
        (self.ref_index, obj, obj_index, log, log_index) = struct.unpack_from(">5Q", footer, self.header_size)
        for what, position in (("ref index", self.ref_index), ("obj", obj >> 5), ("obj index", obj_index),
                               ("log", log), ("log index", log_index)):
            if position >= self.end and position:
                raise CorruptObject(path, self.end, f"reftable {what} position {position} is past the blocks")
        # reftable/table.c: refs are present only when the first block is a ref block (a
        # log-only or empty table has something else, or the footer, right after the header).
        self.has_refs = self.end > self.header_size and buf[self.header_size] == REF_BLOCK

    # -- blocks ------------------------------------------------------------------------

    def _block(self, offset: int, want: int) -> Block | None:
        """The block at offset if it has type want; None at the end of the blocks or at a block
        of another type (where a section ends); CorruptObject if it does not parse."""
        if offset >= self.end:
            return None
        path, buf = self.path, self.buf
        head = self.header_size if offset == 0 else 0
        if offset + head + 4 > self.end:
            raise CorruptObject(path, offset, "reftable block header runs into the footer")
        kind = buf[offset + head]
        if kind not in BLOCK_TYPES:
            raise CorruptObject(path, offset + head, f"reftable block type {kind:#x} is unknown")
        if kind != want:
            return None
        length = _be24(buf, offset + head + 1)
        if length < head + 4 + 2 or offset + length > self.end:
            raise CorruptObject(path, offset + head + 1, f"reftable block length {length} is out of range")
        count = struct.unpack_from(">H", buf, offset + length - 2)[0]
        restarts = length - 2 - 3 * count
        if restarts < head + 4:
            raise CorruptObject(path, offset + length - 2, f"reftable restart count {count} is too big")
        restart_offsets = frozenset(_be24(buf, offset + restarts + 3 * i) for i in range(count))
        if any(not head + 4 <= r < restarts for r in restart_offsets):
            raise CorruptObject(path, offset + restarts, "reftable restart offset outside its records")
        full = length
        # reftable/block.c: an aligned table pads each block to block_size with NULs, unless
        # the next block starts right after it (the writer may leave blocks unaligned).
        if self.block_size and not (length < self.block_size and offset + length < self.end
                                    and buf[offset + length] != 0):
            full = max(self.block_size, length)
        return Block(offset, offset + head + 4, offset + restarts,
                     frozenset(offset + r for r in restart_offsets), full)

    def _key(self, block: Block, pos: int, last: bytes) -> tuple[bytes, int, int]:
        """The key and value type of the record at pos (its prefix compression undone against
        last, the previous key) and where its value starts."""
        buf, path, end = self.buf, self.path, block.restarts
        at = pos
        prefix, pos = varint(buf, pos, end, path)
        packed, pos = varint(buf, pos, end, path)
        suffix, kind = packed >> 3, packed & 7
        if prefix > len(last) or suffix > end - pos:
            raise CorruptObject(path, at, "reftable record key runs past its block")
        if prefix and at in block.restart_offsets:
            raise CorruptObject(path, at, "reftable record at a restart point is prefix-compressed")
        key = last[:prefix] + bytes(buf[pos : pos + suffix])
        if key <= last:
            raise CorruptObject(path, at, "reftable keys out of order")
        return key, kind, pos + suffix

    def _ref_records(self, block: Block) -> Iterator[RefRecord]:
        buf, path, end, raw_len = self.buf, self.path, block.restarts, self.format.raw_len
        pos, name = block.start, b""
        while pos < end:
            name, kind, pos = self._key(block, pos, name)
            delta, pos = varint(buf, pos, end, path)
            oid = peeled = target = None
            if kind == VAL1 or kind == VAL2:
                need = raw_len * kind
                if end - pos < need:
                    raise CorruptObject(path, pos, "reftable ref value runs past its block")
                oid = bytes(buf[pos : pos + raw_len])
                if kind == VAL2:
                    peeled = bytes(buf[pos + raw_len : pos + 2 * raw_len])
                pos += need
            elif kind == SYMREF:
                length, pos = varint(buf, pos, end, path)
                if length > end - pos:
                    raise CorruptObject(path, pos, "reftable symref target runs past its block")
                target = bytes(buf[pos : pos + length])
                pos += length
            elif kind != DELETION:
                raise CorruptObject(path, pos, f"reftable ref value type {kind} is reserved")
            yield RefRecord(name, kind, oid, peeled, target, self.min_update_index + delta)

    def _index_records(self, block: Block) -> Iterator[tuple[bytes, int]]:
        pos, key = block.start, b""
        while pos < block.restarts:
            key, kind, pos = self._key(block, pos, key)
            if kind != 0:
                raise CorruptObject(self.path, pos, "reftable index record with a value type")
            position, pos = varint(self.buf, pos, block.restarts, self.path)
            yield key, position

    # -- refs --------------------------------------------------------------------------

    def records(self) -> Iterator[RefRecord]:
        """Every ref record in name order, deletions included."""
        if not self.has_refs:
            return
        offset, last = 0, b""
        while True:
            block = self._block(offset, REF_BLOCK)
            if block is None:
                return
            for record in self._ref_records(block):
                if record.name <= last:
                    raise CorruptObject(self.path, offset, "reftable blocks out of order")
                last = record.name
                yield record
            offset += block.full_size

    def find(self, name: bytes) -> RefRecord | None:
        """The record of name in this table (a deletion included), through the ref index when
        the table has one."""
        if not self.has_refs:
            return None
        if not self.ref_index:
            return self._scan(self.records(), name)
        offset = self.ref_index
        for _ in range(MAX_INDEX_LEVELS):
            block = self._block(offset, INDEX_BLOCK)
            if block is None:
                raise CorruptObject(self.path, offset, "reftable ref index position holds no index block")
            # An index record names the last key of the block it points to: the first one
            # not below name leads to the only block that can hold name.
            position = next((p for key, p in self._index_records(block) if key >= name), None)
            if position is None:
                return None
            if position >= self.end:
                raise CorruptObject(self.path, offset, f"reftable index points past the blocks ({position})")
            ref_block = self._block(position, REF_BLOCK)
            if ref_block is not None:
                return self._scan(self._ref_records(ref_block), name)
            offset = position  # a lower index level (or, if not, the next round says so)
        raise CorruptObject(self.path, self.ref_index, f"reftable ref index deeper than {MAX_INDEX_LEVELS} levels")

    @staticmethod
    def _scan(records: Iterator[RefRecord], name: bytes) -> RefRecord | None:
        for record in records:
            if record.name >= name:
                return record if record.name == name else None
        return None


class ReftableStack:
    """$GIT_DIR/reftable: tables.list names the tables, oldest first; a newer table's record
    overrides older ones, and a deletion hides the name. tables.list is re-read on every call;
    tables (immutable, uniquely named) are kept while their file identity holds."""

    def __init__(self, directory: str, fmt: ObjectFormat):
        self.dir = directory
        self.format = fmt
        self.list_path = os.path.join(directory, "tables.list")
        self._open: dict[str, Reftable] = {}

    def _names(self) -> list[str]:
        try:
            fd = open_regular(self.list_path)
        except FileNotFoundError:
            return []  # reftable/stack.c: a missing tables.list is an empty stack
        except OSError as e:
            raise CorruptObject(self.list_path, None, f"cannot read tables.list: {e.strerror or e}") from None
        try:
            data = os.read(fd, MAX_TABLES_LIST + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_TABLES_LIST:
            raise CorruptObject(self.list_path, None, f"tables.list is more than {MAX_TABLES_LIST} bytes")
        if data and not data.endswith(b"\n"):
            raise CorruptObject(self.list_path, len(data), "tables.list ends in an unterminated line")
        names = []
        for line in data.split(b"\n")[:-1]:
            if not line:
                continue
            name = os.fsdecode(line)
            if "/" in name or "\0" in name or name in (".", ".."):
                raise CorruptObject(self.list_path, None, f"tables.list names {name!r}, not a file in reftable/")
            names.append(name)
        return names

    def tables(self) -> list[Reftable]:
        """The stack, oldest first, as tables.list says now."""
        for _ in range(MAX_TABLE_RETRIES):
            names = self._names()
            try:
                tables = [self._table(name) for name in names]
            except FileNotFoundError:
                continue  # compacted away between reading the list and opening it
            self._open = {t.path: t for t in tables}
            return tables
        raise CorruptObject(self.list_path, None, "tables.list names a table that does not exist")

    def _table(self, name: str) -> Reftable:
        path = os.path.join(self.dir, name)
        table = self._open.get(path)
        if table is not None:
            st = os.stat(path)
            if file_identity(st) == table.identity:
                return table
        try:
            return Reftable(path, self.format)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise CorruptObject(path, None, f"cannot read reftable: {e.strerror or e}") from None

    def records(self) -> list[RefRecord]:
        """The merged refs, sorted by name, deletions applied."""
        merged: dict[bytes, RefRecord] = {}
        for table in self.tables():
            for record in table.records():
                merged[record.name] = record
        return [merged[n] for n in sorted(merged) if merged[n].value_type != DELETION]

    def read(self, name: bytes) -> RefRecord | None:
        for table in reversed(self.tables()):
            record = table.find(name)
            if record is not None:
                return None if record.value_type == DELETION else record
        return None
