"""The packs of one objects directory: the multi-pack-index (or its chain) first, then the packs
it does not cover, each one id source (id_sources.py); refresh, and what a damaged index falls back to.

Follows libgit2's odb_pack design with its later fixes: packs open lazily, the
multi-pack-index reloads only when its size or trailing checksum changes, a bad
index means plain pack scanning, and a midx entry whose pack is gone or broken
falls through to the other sources instead of failing the lookup.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
from typing import NamedTuple

from ..errors import CorruptObject
from .id_sources import ChainSource, IdSource, MidxSource, PackHealth, PackSource
from ..lru import LRU
from ..mapped_file import file_identity
from .midx_chain import CHAIN_DIR, load_chain, read_chain
from .multi_pack_index import MultiPackIndex, read_checksum
from ..oid import ObjectFormat, Prefix
from .packfile import Pack
from ..refused_paths import stat_nofollow
from . import sizes
from .sizes import MISSING, Located
from ..tuning import MAX_MAPPED_PACKS

log = logging.getLogger("odb")
MIDX_NAME = "multi-pack-index"


def open_pack_limit() -> int:
    """MAX_MAPPED_PACKS, or fewer when the descriptor limit is low: an open pack may hold
    two descriptors, and the process needs the rest for loose objects and its own work."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_MAPPED_PACKS
    return max(4, min(MAX_MAPPED_PACKS, soft // 8))


class MidxInUse(NamedTuple):
    """The multi-pack-index a snapshot reads: none, a plain one, or a chain's layers."""

    layers: tuple[MultiPackIndex, ...] = ()  # base first
    chained: bool = False


class Snapshot:
    """What one refresh saw. Readers take the current snapshot; only its pack order changes.

    `sources` is the lookup order: the multi-pack-index or chain (if one is usable), then one
    source per pack it does not cover, the pack that answered last first (git's MRU of packs).
    """

    __slots__ = ("sources", "packs", "health", "midx", "n_fixed", "find")

    def __init__(self, sources: tuple = (), packs: dict | None = None, health: PackHealth | None = None,
                 midx: MidxInUse | None = None):
        self.sources: tuple[IdSource, ...] = sources
        self.packs: dict[str, Pack] = packs if packs is not None else {}  # pack file name -> Pack
        self.health = health if health is not None else PackHealth()
        self.midx = midx if midx is not None else MidxInUse()
        self.n_fixed = 1 if self.midx.layers else 0  # sources that keep their place: the midx
        # With one source (a multi-pack-index over every pack, or a single pack), a lookup is
        # that source's own find: no loop, no call in between. This is the per-object hot path.
        self.find = sources[0].find if len(sources) == 1 else self._find_in_turn

    def _find_in_turn(self, raw: bytes) -> tuple[Pack, int] | None:
        for source in self.sources:
            hit = source.find(raw)
            if hit is not None:
                if source.movable and self.sources[self.n_fixed] is not source:
                    self._to_front(source)
                return hit
        return None

    def locate_many(self, ids: bytes, n: int) -> Located:
        """find for each of the concatenated ids of n bytes (see IdSource.locate_many). A first
        source that keeps its place (a multi-pack-index) answers in bulk; the ids it lacks, and
        every id when the packs keep a most-recently-used order, go through find itself."""
        sources = self.sources
        if not sources or (len(sources) > 1 and sources[0].movable):
            return sizes.locate_each(self.find, ids, n)
        located = sources[0].locate_many(ids, n)
        if len(sources) > 1:
            missing = [k for k, w in enumerate(located.which) if w == MISSING]
            sizes.find_each(located, self.find, ids, n, missing)
        return located

    def _to_front(self, source: IdSource) -> None:
        # A racing reader may rebuild from the same tuple: either result holds every source.
        sources, k = self.sources, self.n_fixed
        self.sources = sources[:k] + (source,) + tuple(s for s in sources[k:] if s is not source)


class PackBackend:
    def __init__(self, pack_dir: str, fmt: ObjectFormat):
        self.dir = pack_dir
        self.format = fmt
        self._lock = threading.Lock()
        self._snap = Snapshot()
        # find(raw) -> (Pack, offset) | None: the current snapshot's lookup, bound at refresh.
        self.find = self._snap.find
        self._midx_state = None  # what the loaded multi-pack-index (or chain) was read from
        self._pack_ids: dict[str, tuple] = {}  # pack name -> identity of its .pack and .idx
        self._mapped: LRU[Pack, None] = LRU(max_items=open_pack_limit())  # packs holding a map
        self.refresh()

    # -- refresh -------------------------------------------------------------

    def refresh(self) -> bool:
        with self._lock:
            try:
                names = os.listdir(self.dir)
            except OSError:
                names = []
            present = set(names)
            packs, packs_changed = self._scan_packs(names, present)
            midx, midx_changed = self._check_midx(present)
            if not (packs_changed or midx_changed):
                return False
            gone = [p for p in self._mapped.keys() if packs.get(p.name) is not p]
            for pack in gone:
                self._mapped.pop(pack)
            self._snap = snap = self._build_snapshot(midx, packs)
            self.find = snap.find
        # A pack git deleted or replaced is closed now, not when the LRU gets to it: its
        # disk space is only freed once nothing here holds it open or mapped.
        for pack in gone:
            pack.unmap()
        return True

    def _scan_packs(self, names: list[str], present: set[str]) -> tuple[dict, bool]:
        ids = {}
        for name in names:
            # A .pack without its .idx is still being written by git; wait for the index.
            if name.endswith(".pack") and name[:-5] + ".idx" in present:
                ident = self._identity(name)
                if ident is not None:
                    ids[name] = ident
        if ids == self._pack_ids:
            return self._snap.packs, False
        old = self._snap.packs
        packs = {}
        for name, ident in ids.items():
            keep = old.get(name)
            if keep is not None and self._pack_ids.get(name) == ident:
                packs[name] = keep
            else:
                packs[name] = pack = Pack(os.path.join(self.dir, name), self.format)
                pack.on_map = self._mapped_one
        self._pack_ids = ids
        return packs, True

    def _identity(self, name: str):
        try:
            p = stat_nofollow(os.path.join(self.dir, name))
            i = stat_nofollow(os.path.join(self.dir, name[:-5] + ".idx"))
        except OSError:
            return None
        return file_identity(p), file_identity(i)

    def _check_midx(self, present: set[str]) -> tuple[MidxInUse, bool]:
        """The multi-pack-index to use (a plain one, a chain, or none: plain pack scanning),
        and whether that changed.

        git reads the plain multi-pack-index first and the chain only when that fails to
        load (load_multi_pack_index). Each reloads only when what it was read from changed.
        """
        plain_path = os.path.join(self.dir, MIDX_NAME)
        # The directory listing says which exist: no open is tried for what is not there.
        state = (read_checksum(plain_path, self.format) if MIDX_NAME in present else None,
                 read_chain(self.dir, self.format) if CHAIN_DIR in present else None)
        if state == self._midx_state:
            return self._snap.midx, False
        self._midx_state = state
        plain, chain = state
        if plain is not None:
            try:
                return MidxInUse((MultiPackIndex(plain_path, self.format),)), True
            except (CorruptObject, OSError, ValueError) as e:
                # Gone since it was stat'ed: git replaced or deleted it, an everyday race.
                level = logging.DEBUG if isinstance(e, FileNotFoundError) else logging.WARNING
                log.log(level, "ignoring the multi-pack-index: %s", e)
        if chain is not None:
            try:
                return MidxInUse(load_chain(self.dir, self.format, chain), chained=True), True
            except (CorruptObject, OSError, ValueError) as e:
                log.warning("ignoring the multi-pack-index chain, scanning its packs instead: %s", e)
        return MidxInUse(), True

    def _build_snapshot(self, midx: MidxInUse, packs: dict) -> Snapshot:
        old = self._snap
        health = PackHealth((p for p in old.health.bad if packs.get(p.name) is p),
                            (p for p in old.health.denied if packs.get(p.name) is p))
        covered: set[str] = set()
        layers = []
        for index in midx.layers:
            covered.update(name[:-4] + ".pack" for name in index.pack_names)
            named = tuple(packs.get(name[:-4] + ".pack") for name in index.pack_names)
            layers.append(MidxSource(index, named, health))
        fixed: tuple[IdSource, ...] = ()
        if midx.chained:
            fixed = (ChainSource(tuple(reversed(layers))),)
        elif layers:
            fixed = (layers[0],)
        # Packs keep their lookup order across refreshes; new ones go last.
        rank = {s.pack: k for k, s in enumerate(old.sources) if isinstance(s, PackSource)}
        others = sorted((p for name, p in packs.items() if name not in covered),
                        key=lambda p: rank.get(p, len(rank)))
        sources = fixed + tuple(PackSource(p, health, self._touch) for p in others)
        return Snapshot(sources, packs, health, midx)

    def _mapped_one(self, pack: Pack) -> None:
        with self._lock:
            victims = self._mapped.put(pack, None)
        for victim, _ in victims:
            victim.unmap()

    def _touch(self, pack: Pack) -> None:
        self._mapped.touch(pack)  # unmapped meanwhile: nothing (the next read maps it again)

    def served_index(self) -> tuple[MultiPackIndex, tuple] | str:
        """(the plain multi-pack-index this snapshot reads first, the Pack of each of its pack ids
        or None), or why there is none (odb/served_index.py)."""
        snap = self._snap
        if not snap.midx.layers:
            return "no multi-pack-index"
        if snap.midx.chained:
            return "a multi-pack-index chain"
        index = snap.midx.layers[0]
        return index, tuple(snap.packs.get(name[:-4] + ".pack") for name in index.pack_names)

    # -- lookups -------------------------------------------------------------

    @property
    def sources(self) -> tuple[IdSource, ...]:
        """The id sources in lookup order (for tests and diagnostics)."""
        return self._snap.sources

    def prefix_matches(self, prefix: Prefix, limit: int) -> set[bytes]:
        found: set[bytes] = set()
        for source in self._snap.sources:
            found.update(source.prefix_matches(prefix, limit))
        return found

    def bucket_block(self, first_byte: int) -> tuple[bytes, bool]:
        """(the raw ids of the bucket, concatenated; whether they are one sorted table's slice,
        each id once). With one healthy multi-pack-index and no other pack (the usual case),
        a slice of the midx itself; else a concatenation, duplicates possible.

        Both come from one snapshot. Asked apart, another thread's refresh could swap the
        snapshot in between, and a concatenation taken for a sorted table gave a listing
        duplicate ids: their inodes were moved, and a READ of the inode the kernel had been
        given failed with ENOENT (issue 17's maintenance flake)."""
        sources = self._snap.sources
        if len(sources) == 1:
            return sources[0].bucket_block(first_byte), sources[0].sorted_block
        return b"".join([s.bucket_block(first_byte) for s in sources]), not sources

    def nonempty_buckets(self) -> set[int]:
        """First bytes that some source lists, from the fanouts alone when nothing is broken."""
        out: set[int] = set()
        for source in self._snap.sources:
            out |= source.nonempty_buckets()
        return out

    def locate_many(self, ids: bytes) -> Located:
        """Where each of the concatenated raw ids is, as find says (see Snapshot.locate_many)."""
        return self._snap.locate_many(ids, self.format.raw_len)

    def id_at_offset(self, pack: Pack, offset: int) -> bytes | None:
        """The id of the entry of `pack` at `offset`: from a multi-pack-index's reverse index when
        one serves that entry, else from the pack's own (its .rev file, or one built)."""
        for source in self._snap.sources[: self._snap.n_fixed]:
            raw = source.id_at_offset(pack, offset)
            if raw is not None:
                return raw
        return pack.index.id_at_offset(offset)

    def pack_names(self) -> list[str]:
        return sorted(self._snap.packs)
