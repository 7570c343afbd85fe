"""Id sources of one pack directory, as peers: a pack's own .idx, a multi-pack-index, a chain of them.

Each answers the same questions (gitoxide's SingleOrMultiIndex): where an id is (find), which
ids start with a prefix, which ids a bucket holds (bucket_block, concatenated raw ids), which
buckets hold any, which pack holds an id, and which id starts at a pack offset. The pack backend
keeps a tuple of them and asks each in turn.

Every source answers only for packs that can be read: a pack that is gone or fails its open
check is skipped (PackHealth), so a listing never names an object that cannot be served.
"""

from __future__ import annotations

import logging
import struct

from . import sizes
from ..errors import CorruptObject
from .multi_pack_index import MultiPackIndex
from ..oid import Prefix
from .packfile import Pack
from .sizes import MISSING, UNSURE, Located

log = logging.getLogger("odb")
_ENTRY = struct.Struct(">II").unpack_from  # an OOFF entry: pack id, offset


class PackHealth:
    """The packs of one snapshot that failed their open check (the .pack against its .idx):
    skipped, warned once, until the file changes (a changed file is a new Pack)."""

    __slots__ = ("bad", "denied")

    def __init__(self, carried=(), denied=()):
        self.bad: set[Pack] = set(carried)
        self.denied: set[Pack] = set(denied)  # its .idx is readable, its data is not

    def usable(self, pack: Pack) -> bool:
        """Opens the pack's index on first use and checks the pack against it."""
        if pack.checked or pack in self.denied:
            return True
        if pack in self.bad:
            return False
        try:
            pack.check()
            return True
        except PermissionError as e:
            if e.filename == pack.pack_path:
                # Its objects are listed and found, and reading one says permission denied
                # (odb.AccessDenied), as its mode shows.
                log.debug("pack %s: %s", pack.name, e)
                self.denied.add(pack)
                return True
            log.warning("skipping pack %s: %s", pack.name, e)
        except (CorruptObject, OSError, ValueError) as e:
            # A pack deleted since the scan (repack, gc, a .tmp- pack renamed) is an everyday race.
            level = logging.DEBUG if isinstance(e, FileNotFoundError) else logging.WARNING
            log.log(level, "skipping pack %s: %s", pack.name, e)
        self.bad.add(pack)
        return False


def _nonempty(fanout) -> set[int]:
    return {b for b in range(256) if fanout[b] > (fanout[b - 1] if b else 0)}


class IdSource:
    """The interface; `find` is the hot path, and each source writes its own."""

    __slots__ = ()
    # Pack sources move to the front of the lookup order when they answer (git's MRU of packs);
    # multi-pack-indexes stay first.
    movable = False
    # bucket_block is one sorted table's slice (each id once): a listing can use it as it is.
    sorted_block = True

    def find(self, raw: bytes) -> tuple[Pack, int] | None:
        raise NotImplementedError

    def prefix_matches(self, prefix: Prefix, limit: int) -> list[bytes]:
        raise NotImplementedError

    def bucket_block(self, first_byte: int) -> bytes:
        raise NotImplementedError

    def nonempty_buckets(self) -> set[int]:
        raise NotImplementedError

    def id_at_offset(self, pack: Pack, offset: int) -> bytes | None:
        """The id this source serves from `pack` at `offset`; None if it does not know."""
        raise NotImplementedError

    def locate_many(self, ids: bytes, n: int) -> Located:
        """What find says of each of the concatenated ids of n bytes, as one Located; UNSURE
        where the careful path must look (a broken entry, a pack that cannot be read)."""
        return sizes.locate_each(self.find, ids, n)


class PackSource(IdSource):
    """One pack through its own .idx."""

    __slots__ = ("pack", "health", "_touch")
    movable = True

    def __init__(self, pack: Pack, health: PackHealth, touch):
        self.pack = pack
        self.health = health
        self._touch = touch  # the backend's LRU of open packs

    def find(self, raw: bytes) -> tuple[Pack, int] | None:
        pack = self.pack
        if not (pack.checked or self.health.usable(pack)):
            return None
        offset = pack.index.find_offset(raw)
        if offset is None:
            return None
        self._touch(pack)
        return pack, offset

    def locate_many(self, ids: bytes, n: int) -> Located:
        pack = self.pack
        if not (pack.checked or self.health.usable(pack)):
            return Located.nowhere(len(ids) // n)
        index = pack.index
        which, offsets = sizes.entries(index, sizes.positions(index.ids, ids))
        if max(which, default=MISSING) >= 0:
            self._touch(pack)
        return Located([pack], which, offsets)

    def prefix_matches(self, prefix: Prefix, limit: int) -> list[bytes]:
        if not self.health.usable(self.pack):
            return []
        return list(self.pack.index.ids.prefix_matches(prefix, limit))

    def bucket_block(self, first_byte: int) -> bytes:
        if not self.health.usable(self.pack):
            return b""
        return self.pack.index.ids.bucket_block(first_byte)

    def nonempty_buckets(self) -> set[int]:
        if not self.health.usable(self.pack):
            return set()
        return _nonempty(self.pack.index.ids.fanout)

    def id_at_offset(self, pack: Pack, offset: int) -> bytes | None:
        if pack is not self.pack:
            return None
        return pack.index.id_at_offset(offset)


class MidxSource(IdSource):
    """One multi-pack-index (plain, or one layer of a chain) over the packs it names.

    `packs` holds the Pack of each pack id, None for a pack the directory no longer has.
    An entry that is broken or whose pack cannot be read falls through to the packs' own
    .idx files, as if this index did not exist; listings leave such objects out.
    """

    __slots__ = ("midx", "packs", "health", "_all_alive", "_pack_ids", "_nonempty", "_position", "_buf",
                 "_ooff")

    def __init__(self, midx: MultiPackIndex, packs: tuple, health: PackHealth):
        self.midx = midx
        self.packs = packs
        self.health = health
        self._all_alive = False  # once every pack passed its check, it stays so in this snapshot
        self._pack_ids = {p: k for k, p in enumerate(packs) if p is not None}
        self._nonempty: set[int] | None = None
        self._position = midx.ids.find
        self._buf, self._ooff = midx.buf, midx.ooff

    def find(self, raw: bytes) -> tuple[Pack, int] | None:
        i = self._position(raw)
        if i is None:
            return None
        # MultiPackIndex.entry_at, inlined for the usual entry: a small offset, a pack id in range.
        pack_id, offset = _ENTRY(self._buf, self._ooff + 8 * i)
        if offset & 0x80000000 or pack_id >= len(self.packs):
            hit = self.midx.entry_at(i)  # a large offset, or a broken entry (None)
            if hit is None:
                return self._find_in_packs(raw)
            pack_id, offset = hit
        pack = self.packs[pack_id]
        if pack is not None and (pack.checked or self.health.usable(pack)) and pack.contains_offset(offset):
            return pack, offset
        return self._find_in_packs(raw)

    def locate_many(self, ids: bytes, n: int) -> Located:
        # find's steps for many ids at once; an entry find would look up in the packs' own
        # indexes (broken, or in a pack that cannot be read) is left to the careful path.
        which, offsets = sizes.entries(self.midx, sizes.positions(self.midx.ids, ids))
        packs = self.packs
        for j in set(which):
            pack = packs[j] if j >= 0 else None
            if j >= 0 and (pack is None or not (pack.checked or self.health.usable(pack))):
                for k, w in enumerate(which):
                    if w == j:
                        which[k] = UNSURE
        return Located(list(packs), which, offsets)

    def _find_in_packs(self, raw: bytes) -> tuple[Pack, int] | None:
        """The object through its packs' own indexes: its midx entry is unusable."""
        for pack in self.packs:
            if pack is not None and self.health.usable(pack):
                offset = pack.index.find_offset(raw)
                if offset is not None:
                    return pack, offset
        return None

    def _alive(self) -> list[bool] | None:
        """Per pack id whether that pack can be read; None when all can (the usual case)."""
        if self._all_alive:
            return None
        alive = [p is not None and self.health.usable(p) for p in self.packs]
        if all(alive):
            self._all_alive = True
            return None
        return alive

    def _serves(self, i: int, alive: list[bool]) -> bool:
        hit = self.midx.entry_at(i)
        return hit is not None and alive[hit[0]]

    def prefix_matches(self, prefix: Prefix, limit: int) -> list[bytes]:
        ids = self.midx.ids
        matches = list(ids.prefix_matches(prefix, limit))
        alive = self._alive()
        if alive is None:
            return matches
        # As listings do: an object whose pack is gone is no candidate.
        return [raw for raw in matches if self._serves(ids.find(raw), alive)]

    def bucket_block(self, first_byte: int) -> bytes:
        ids = self.midx.ids
        alive = self._alive()
        if alive is None:
            return ids.bucket_block(first_byte)
        # Some named packs are gone or broken: list only the objects that can still be read.
        lo, hi = ids.bucket_range(first_byte)
        return b"".join(ids.id_at(i) for i in range(lo, hi) if self._serves(i, alive))

    def nonempty_buckets(self) -> set[int]:
        if self._alive() is not None:
            # Rare: a named pack is gone or broken, so the fanout over-counts.
            return {b for b in range(256) if self.bucket_block(b)}
        if self._nonempty is None:
            self._nonempty = _nonempty(self.midx.ids.fanout)
        return self._nonempty

    def id_at_offset(self, pack: Pack, offset: int) -> bytes | None:
        pack_id = self._pack_ids.get(pack)
        if pack_id is None or not self.midx.has_reverse_index:
            return None
        try:
            pos = self.midx.position_at_offset(pack_id, offset)
        except CorruptObject as e:
            log.warning("not using the reverse index of a multi-pack-index: %s", e)
            self.midx.drop_reverse_index()  # warned once; the packs' own reverse indexes answer
            return None
        return None if pos is None else self.midx.ids.id_at(pos)


class ChainSource(IdSource):
    """An incremental multi-pack-index chain: its layers read as one id space.

    Layers are asked newest first, as git's bsearch_midx walks from the tip to the base;
    git writes each object into one layer only, so listings concatenate the layers.
    """

    __slots__ = ("layers",)

    def __init__(self, layers: tuple[MidxSource, ...]):
        self.layers = layers  # newest first

    def find(self, raw: bytes) -> tuple[Pack, int] | None:
        for layer in self.layers:
            hit = layer.find(raw)
            if hit is not None:
                return hit
        return None

    def locate_many(self, ids: bytes, n: int) -> Located:
        # As find: each layer in turn is asked for the ids the layers above it lack.
        located = Located.nowhere(len(ids) // n)
        missing = range(len(located.which))
        for layer in self.layers:
            if not missing:
                break
            block = ids if len(missing) == len(located.which) else b"".join(ids[k * n : (k + 1) * n] for k in missing)
            found = layer.locate_many(block, n)
            first = len(located.packs)
            located.packs.extend(found.packs)
            still = []
            for k, w, offset in zip(missing, found.which, found.offsets):
                if w == MISSING:
                    still.append(k)
                else:
                    located.which[k] = w + first if w >= 0 else w
                    located.offsets[k] = offset
            missing = still
        return located

    def prefix_matches(self, prefix: Prefix, limit: int) -> list[bytes]:
        return [raw for layer in self.layers for raw in layer.prefix_matches(prefix, limit)]

    sorted_block = False  # its layers' blocks, one after the other

    def bucket_block(self, first_byte: int) -> bytes:
        return b"".join([layer.bucket_block(first_byte) for layer in self.layers])

    def nonempty_buckets(self) -> set[int]:
        return set().union(*(layer.nonempty_buckets() for layer in self.layers))

    def id_at_offset(self, pack: Pack, offset: int) -> bytes | None:
        for layer in self.layers:
            raw = layer.id_at_offset(pack, offset)
            if raw is not None:
                return raw
        return None
