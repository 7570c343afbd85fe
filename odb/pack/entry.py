"""Pack entry headers: an entry's type, its size and its delta base, parsed from the bytes at its
offset (odb/_engine.c and odb/_sizes.c mirror parse_entry, check for check)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..objects.kinds import Kind

if TYPE_CHECKING:
    from .packfile import Pack

# Plain ints: entry types are compared with these once per entry parsed or walked.
OFS_DELTA = int(Kind.OFS_DELTA)
REF_DELTA = int(Kind.REF_DELTA)
# Deflate cannot expand more than about 1032:1, so a size claimed beyond that
# for the compressed bytes left in the file is a lie; refusing it up front keeps
# memory bounded by what is on disk, never by what a header says.
MAX_INFLATE_RATIO = 1032
# An entry header is at most 1 + 9 size bytes + 10 offset bytes or an id (32 bytes).
MAX_ENTRY_HEADER = 48

# Entry(...) goes through a Python-level __new__; the tuple's own is C (133 ns against 314 ns).
# The Python read path builds an entry per link of each delta chain it walks: this makes
# read_header of buckets 00-03 of the bench repository 6 % faster (0.062 s against 0.066 s,
# medians of 5 processes; docs/performance.md, "Micro-optimisations"). The C engine builds none.
_new = tuple.__new__


class Entry(NamedTuple):
    offset: int
    type: int  # a Kind code: 1-4 a whole object, 6 OFS_DELTA, 7 REF_DELTA
    size: int  # inflated size of this entry's data (for a delta: the delta's own size)
    data_offset: int  # where the zlib stream starts
    base_offset: int  # OFS_DELTA: the base entry's offset; otherwise -1
    base_id: bytes | None  # REF_DELTA: the base's raw id


def parse_entry(pack: Pack, head, offset: int) -> Entry:
    """Parses the entry starting at head[0], which lies at `offset` in the pack (its data end
    bounds the entry, its path names the damage)."""
    end = pack._data_end
    if not 12 <= offset < end:
        raise pack._corrupt("entry offset outside the pack", offset)
    limit = len(head)  # the caller read no further than the end of the data
    if not limit:
        raise pack._corrupt("pack truncated under us", offset)
    c = head[0]
    pos = 1
    kind = (c >> 4) & 7
    size = c & 15
    shift = 4
    while c & 0x80:
        if pos >= limit or shift > 63:
            raise pack._corrupt("bad entry header", offset)
        c = head[pos]
        pos += 1
        size |= (c & 0x7F) << shift
        shift += 7
    if size > (end - offset - pos) * MAX_INFLATE_RATIO + 64:
        # Refused here, not only at inflation: st_size comes from this header.
        raise pack._corrupt(f"entry claims {size} bytes, more than its data can hold", offset)
    if kind == OFS_DELTA:
        if pos >= limit:
            raise pack._corrupt("truncated delta base offset", offset)
        c = head[pos]
        pos += 1
        distance = c & 0x7F
        while c & 0x80:
            if pos >= limit or distance > (1 << 56):
                raise pack._corrupt("bad delta base offset", offset)
            c = head[pos]
            pos += 1
            distance = ((distance + 1) << 7) | (c & 0x7F)
        base = offset - distance
        # A base must come before its delta: this is also what makes OFS chains loop-free.
        if not 12 <= base < offset:
            raise pack._corrupt(f"delta base offset {base} out of range", offset)
        return _new(Entry, (offset, OFS_DELTA, size, offset + pos, base, None))
    if kind == REF_DELTA:
        h = pack.format.raw_len
        if pos + h > limit:
            raise pack._corrupt("truncated delta base id", offset)
        return _new(Entry, (offset, kind, size, offset + pos + h, -1, bytes(head[pos : pos + h])))
    if kind in (0, 5):
        raise pack._corrupt(f"invalid entry type {kind}", offset)
    return _new(Entry, (offset, kind, size, offset + pos, -1, None))
