"""Object sizes in bulk: ids found, index entries decoded and entry headers read many per call,
in C (odb/_sizes.c) when it was compiled, else by the Python code each step mirrors."""

from __future__ import annotations

from array import array
from typing import NamedTuple

from ..objects import delta, delta_chain
from . import entry as pack_entry, packfile as pack_format
from ..errors import CorruptObject
from .fanout import SUBFANOUT_MIN, SortedIds
from .. import accelerators

__all__ = ["IMPLEMENTATION", "MISSING", "UNSURE", "Located", "entries", "entry_sizes", "find_each", "locate_each", "positions"]

MISSING = -1  # no entry for the id in this source
# An entry the bulk path does not read (a broken one, or in a pack that cannot be read): the
# careful per-object path answers for it, with whatever error or fallback it finds.
UNSURE = -2


class Located(NamedTuple):
    """Where each id of a batch is: which[k] indexes packs (or is MISSING or UNSURE), and
    offsets[k] is the offset of its entry there."""

    packs: list
    which: array
    offsets: array

    @classmethod
    def nowhere(cls, count: int) -> Located:
        return cls([], array("q", [MISSING]) * count, _int64s(count))


def locate_each(find, ids: bytes, n: int) -> Located:
    """Located for the concatenated ids of n bytes, by find(raw) -> (pack, offset) | None."""
    count = len(ids) // n
    located = Located.nowhere(count)
    find_each(located, find, ids, n, range(count))
    return located


def find_each(located: Located, find, ids: bytes, n: int, picks) -> None:
    """Fills in located the ids at the positions picks, one find at a time; an id whose lookup
    fails (a broken index entry) is UNSURE."""
    packs, which, offsets = located
    number = {p: j for j, p in enumerate(packs) if p is not None}
    for k in picks:
        try:
            hit = find(ids[k * n : (k + 1) * n])
        except (CorruptObject, OSError, ValueError):
            which[k] = UNSURE
            continue
        if hit is not None:
            pack, offsets[k] = hit
            j = number.get(pack)
            if j is None:
                j = number[pack] = len(packs)
                packs.append(pack)
            which[k] = j


# The compiled module, or None when odb/_sizes.c was not built (pip install without a compiler
# or zlib's headers); `accelerator` is what the functions below use (GITFS_PURE_PYTHON=1: none).
compiled, accelerator, IMPLEMENTATION = accelerators.load("_sizes")


def _int64s(n: int) -> array:
    return array("q", bytes(8 * n))


def positions(table: SortedIds, ids: bytes) -> array:
    """The position of each id (raw, concatenated) in table, as table.find gives it; -1 if absent."""
    n = table.raw_len
    count = len(ids) // n
    out = _int64s(count)
    table.touched(count * 2 * table.stride)  # a lookup reads about two ids' pages' worth (second-level fanout)
    c = accelerator
    if c is not None:
        c.positions(table.buf, table.start, table.stride, n, table.fanout_array(), SUBFANOUT_MIN, ids, out)
        return out
    find = table.find
    for k in range(count):
        i = find(ids[k * n : (k + 1) * n])
        out[k] = MISSING if i is None else i
    return out


def entries(index, found: array) -> tuple[array, array]:
    """(pack ids, offsets) of the entries at the positions found in index (a MultiPackIndex or a
    PackIndex, whose entry_at gives one): MISSING where nothing was found, UNSURE where
    entry_at says the entry is broken."""
    count = len(found)
    which, offsets = _int64s(count), _int64s(count)
    c = accelerator
    if c is not None:
        c.entries(index.buf, found, *index.entry_layout(), which, offsets)
        return which, offsets
    entry_at = index.entry_at
    for k, i in enumerate(found):
        hit = None if i < 0 else entry_at(i)
        if hit is None:
            which[k] = MISSING if i < 0 else UNSURE
        else:
            which[k], offsets[k] = hit
    return which, offsets


def _limits(raw_len: int) -> tuple:
    # Read at each call, so that the C path can never drift from the Python one (tests lower them).
    return (raw_len, pack_format.HEADER_READ, pack_format.PREFIX_READ, delta_chain.DELTA_HEADER_BYTES,
            delta.MAX_VARINT_BYTES, pack_entry.MAX_INFLATE_RATIO, delta_chain.MAX_DELTA_EXPANSION,
            delta_chain.MAX_DELTA_RESULT)


def entry_sizes(located: Located, raw_len: int) -> array:
    """The size of each located object (delta_chain.packed_size), or -1 where it is not located
    or its entry does not read: the careful path then answers, and reports why."""
    which, offsets = located.which, located.offsets
    out = array("q", [-1]) * len(which)
    c = accelerator
    if c is not None:
        held: list = []  # the descriptors read through, open until the call returns (see Descriptor)
        c.entry_sizes(_sources(located.packs, which, held), which, offsets, out, _limits(raw_len))
        return out
    pack_list = located.packs
    for k, j in enumerate(which):
        if j >= 0:
            try:
                out[k] = delta_chain.packed_size(pack_list[j], offsets[k])
            except (CorruptObject, OSError, ValueError):
                pass  # left -1: the careful path reads it again and says what is wrong
    return out


def _sources(pack_list: list, which: array, held: list) -> list:
    """What C reads the entries of each pack that `which` names from: (bytes or descriptor, end
    of the data), or None for a pack that does not open."""
    sources: list = [None] * len(pack_list)
    for j in set(which):
        if j < 0:
            continue
        try:
            source, end = pack_list[j].header_source()
        except (CorruptObject, OSError, ValueError):
            continue  # the careful path opens it again and reports
        held.append(source)
        sources[j] = (source if type(source) is bytes else source.fd, end)
    return sources
