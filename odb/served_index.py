"""The multi-pack-index as a compiled reader outside odb reads it (gitfs/fuse/_request_path.c).

Such a reader finds ids in the index's own bytes and reads their entries through odb's engine
(odb/engine_api.h), and leaves everything else to odb's Python lookups. It can answer for an id
only where odb's lookup would find that same entry first, which holds when the index is the
first source of the first objects directory: a plain index (not a chain), each pack id with its
Pack opened and checked as MidxSource.find would check it. A caller that numbers objects by their
ids must also know the ids the index does not serve (ids_outside).
"""

from __future__ import annotations

from typing import NamedTuple

from .access import Access
from .errors import CorruptObject
from .objects.delta_chain import engine_limits
from .pack.multi_pack_index import MultiPackIndex
from .pack.packfile import Pack


class ServedPack(NamedTuple):
    pack: Pack
    access: Access  # what the objects it holds show (odb.access)
    data: object    # the mapping, or the small file's bytes (Pack.engine_source)
    end: int        # where its entries end
    header: object  # Pack.header_source()[0]: the descriptor (held open) or the small file's bytes


class ServedIndex(NamedTuple):
    index: MultiPackIndex
    packs: tuple[ServedPack | None, ...]  # by pack id; None: a pack that cannot be read
    limits: tuple                        # engine_limits(): what the engine checks entries against
    marks_seen: list                     # each pack's window marks when feed_touched last ran

    def feed_touched(self, touched) -> None:
        """Counts the pages the compiled reader touched in each pack's page budget (odb/pack/
        residency.py). touched(k, reset) gives the windows it marked in pack k since the last
        call, its marks cleared first if reset: the pack gave its pages back meanwhile (its
        marks are then a new array), so that windows touched again count again."""
        for k, served in enumerate(self.packs):
            if served is None:
                continue
            pack = served.pack
            windows = pack._windows
            n = touched(k, windows is not self.marks_seen[k])
            self.marks_seen[k] = windows
            if n:
                pack.touched(n)


def served_index(store, max_packs: int) -> ServedIndex | str:
    """The store's plain multi-pack-index with its packs opened, or why there is none to serve."""
    if store.verify:
        return "objects are hashed as they are read (--verify)"
    if store.gone is not None:
        return "the repository is gone"
    dirs = store._dirs
    if not dirs or dirs[0] is not store._main:
        return "the repository's own objects directory is not read first"
    found = dirs[0].packs.served_index()
    if isinstance(found, str):
        return found
    index, packs = found
    if len(packs) > max_packs:
        return f"the multi-pack-index covers {len(packs)} packs, more than {max_packs}"
    served = []
    for pack in packs:
        try:
            if pack is None:
                raise FileNotFoundError
            pack.ensure_open()
            data, end, _ = pack.engine_source()
            served.append(ServedPack(pack, store._access.for_pack(pack), data, end, pack.header_source()[0]))
        except (CorruptObject, OSError, ValueError):
            served.append(None)  # its objects are left to the Python path, which says what is wrong
    return ServedIndex(index, tuple(served), engine_limits(store.format.raw_len), [None] * len(served))


def ids_outside(store, limit: int) -> list[bytes] | None:
    """Every id that the served index does not serve, as blocks of concatenated raw ids (a block
    may repeat an id); None when there are more than limit."""
    raw_len = store.format.raw_len
    blocks, count = [], 0
    for k, d in enumerate(store._dirs):
        # The first directory's index serves its own ids; every other source's ids are outside.
        sources = d.packs.sources[1:] if k == 0 else d.packs.sources
        loose = d.loose.nonempty_buckets()  # one listing of the directory, then only those buckets
        for bucket in range(256):
            for source in sources:
                block = source.bucket_block(bucket)
                if block:
                    count += len(block) // raw_len
                    blocks.append(block)
            if bucket in loose:
                names = d.loose.hex_in_bucket(bucket)
                count += len(names)
                blocks.append(bytes.fromhex("".join(names)))
            if count > limit:
                return None
    return blocks
