"""The packs of one objects directory: multi-pack-index first, then the packs it does not cover.

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
from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import CorruptObject
from .mapped_file import file_identity
from .multi_pack_index import MultiPackIndex, read_checksum
from .oid import ObjectFormat
from .pack import Pack
from .refused_paths import stat_nofollow

log = logging.getLogger("odb")
MIDX_NAME = "multi-pack-index"
# Big packs open at once, each holding a descriptor (and, once mapped, the mapping's
# own): this bounds descriptors and address space, as git's core.packedGitLimit bounds
# windows. Lower when the process may open few files.
MAX_MAPPED_PACKS = 256


def open_pack_limit() -> int:
    """MAX_MAPPED_PACKS, or fewer when the descriptor limit is low: an open pack may hold
    two descriptors, and the process needs the rest for loose objects and its own work."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_MAPPED_PACKS
    return max(4, min(MAX_MAPPED_PACKS, soft // 8))


@dataclass(frozen=True)
class Snapshot:
    """What one refresh saw. Readers take the current snapshot and never see it change."""

    midx: MultiPackIndex | None = None
    midx_packs: tuple = ()  # Pack or None per midx pack id
    unindexed: tuple = ()  # packs the midx does not name
    packs: dict = field(default_factory=dict)  # pack file name -> Pack


class PackBackend:
    def __init__(self, pack_dir: str, fmt: ObjectFormat):
        self.dir = pack_dir
        self.format = fmt
        self._lock = threading.Lock()
        self._snap = Snapshot()
        self._midx_state = None  # (size, checksum) of the loaded multi-pack-index file
        self._pack_ids: dict[str, tuple] = {}  # pack name -> identity of its .pack and .idx
        self._bad: dict[str, tuple] = {}  # pack name -> identity when it failed, warned once
        self._denied: dict[str, tuple] = {}  # pack name -> identity when its .pack was unreadable
        self._last_found: Pack | None = None
        self._mapped: OrderedDict[Pack, None] = OrderedDict()  # least recently used first
        self.max_mapped = open_pack_limit()
        self.refresh()

    # -- refresh -------------------------------------------------------------

    def refresh(self) -> bool:
        with self._lock:
            packs, packs_changed = self._scan_packs()
            midx, midx_changed = self._check_midx()
            if not (packs_changed or midx_changed):
                return False
            gone = [p for p in self._mapped if packs.get(p.name) is not p]
            for pack in gone:
                del self._mapped[pack]
            self._snap = self._build_snapshot(midx, packs)
        # A pack git deleted or replaced is closed now, not when the LRU gets to it: its
        # disk space is only freed once nothing here holds it open or mapped.
        for pack in gone:
            pack.unmap()
        return True

    def _scan_packs(self) -> tuple[dict, bool]:
        try:
            names = os.listdir(self.dir)
        except OSError:
            names = []
        present = set(names)
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

    def _check_midx(self) -> tuple[MultiPackIndex | None, bool]:
        path = os.path.join(self.dir, MIDX_NAME)
        state = read_checksum(path, self.format)
        # Reload only when size or checksum differ from what is loaded.
        if state == self._midx_state:
            return self._snap.midx, False
        self._midx_state = state
        if state is None:
            return None, True
        try:
            return MultiPackIndex(path, self.format), True
        except (CorruptObject, OSError, ValueError) as e:
            # Gone since it was stat'ed: git replaced or deleted it, an everyday race.
            level = logging.DEBUG if isinstance(e, FileNotFoundError) else logging.WARNING
            log.log(level, "ignoring the multi-pack-index, scanning packs instead: %s", e)
            return None, True

    def _build_snapshot(self, midx, packs: dict) -> Snapshot:
        if midx is None:
            return Snapshot(None, (), tuple(packs.values()), packs)
        covered = {name[:-4] + ".pack" for name in midx.pack_names}
        midx_packs = tuple(packs.get(name[:-4] + ".pack") for name in midx.pack_names)
        unindexed = tuple(p for name, p in packs.items() if name not in covered)
        return Snapshot(midx, midx_packs, unindexed, packs)

    def _mapped_one(self, pack: Pack) -> None:
        with self._lock:
            self._mapped[pack] = None
            victims = []
            while len(self._mapped) > self.max_mapped:
                victims.append(self._mapped.popitem(last=False)[0])
        for victim in victims:
            victim.unmap()

    def _touch(self, pack: Pack) -> None:
        try:
            self._mapped.move_to_end(pack)
        except KeyError:
            pass  # unmapped meanwhile; the next read maps it again

    # -- lookups -------------------------------------------------------------

    def _usable(self, pack: Pack) -> bool:
        """Opens a pack on first use; a broken one is skipped (warned once) until it changes.

        Opening checks the .idx and the .pack against each other (object count, trailer), so a
        pack whose data disagrees with its index is neither listed nor found, whichever way in.
        """
        if pack.name in self._bad:
            if self._bad[pack.name] == self._pack_ids.get(pack.name):
                return False
            del self._bad[pack.name]
        if self._denied.get(pack.name, False) == self._pack_ids.get(pack.name):
            return True
        try:
            pack.check()
            return True
        except PermissionError as e:
            if e.filename == pack.pack_path:
                # Its .idx is readable, its data is not: its objects are listed and found, and
                # reading one says permission denied (odb.AccessDenied), as its mode shows.
                log.debug("pack %s: %s", pack.name, e)
                self._denied[pack.name] = self._pack_ids.get(pack.name)
                return True
            log.warning("skipping pack %s: %s", pack.name, e)
        except (CorruptObject, OSError, ValueError) as e:
            # A pack deleted since the scan (repack, gc, a .tmp- pack renamed) is an everyday race.
            level = logging.DEBUG if isinstance(e, FileNotFoundError) else logging.WARNING
            log.log(level, "skipping pack %s: %s", pack.name, e)
        self._bad[pack.name] = self._pack_ids.get(pack.name)
        return False

    def find(self, raw: bytes) -> tuple[Pack, int] | None:
        snap = self._snap
        broken_hit = False
        if snap.midx is not None:
            i = snap.midx.ids.find(raw)
            if i is not None:
                hit = snap.midx.entry_at(i)
                if hit is not None:
                    pack = snap.midx_packs[hit[0]]
                    # pack.checked and no pack marked bad: _usable's answer, without the call.
                    if pack is not None and (pack.checked and not self._bad or self._usable(pack)) \
                            and pack.contains_offset(hit[1]):
                        return pack, hit[1]
                broken_hit = True
        found = self._find_in(snap.unindexed, raw, remember=True)
        if found is None and broken_hit:
            # The midx names the object but its entry is unusable: ask the packs' own
            # indexes, as if the midx did not exist.
            found = self._find_in([p for p in snap.midx_packs if p is not None], raw, remember=False)
        return found

    def _find_in(self, packs, raw: bytes, remember: bool) -> tuple[Pack, int] | None:
        last = self._last_found
        if remember and last is not None and last in packs and self._usable(last):
            off = last.index.find_offset(raw)
            if off is not None:
                self._touch(last)
                return last, off
        for pack in packs:
            if (remember and pack is last) or not self._usable(pack):
                continue
            off = pack.index.find_offset(raw)
            if off is not None:
                if remember:
                    self._last_found = pack
                self._touch(pack)
                return pack, off
        return None

    def _id_tables(self):
        """Every sorted id table that answers for this backend, with a filter for dead midx packs."""
        snap = self._snap
        tables = []
        if snap.midx is not None:
            tables.append(snap.midx.ids)
        for pack in snap.unindexed:
            if self._usable(pack):
                tables.append(pack.index.ids)
        return tables

    def nonempty_buckets(self) -> set[int]:
        """First bytes that some table lists, from the fanouts alone."""
        snap = self._snap
        if snap.midx is not None and not all(self._alive(snap)):
            # Rare: a named pack is gone or broken, so the midx fanout over-counts.
            return {b for b in range(256) if self.ids_in_bucket(b)}
        out = set()
        for table in self._id_tables():
            fanout = table.fanout
            out.update(b for b in range(256) if fanout[b] > (fanout[b - 1] if b else 0))
        return out

    def ids_in_bucket(self, first_byte: int) -> list[bytes]:
        snap = self._snap
        out = []
        if snap.midx is not None:
            out.extend(self._live_midx_ids(snap, first_byte))
        for pack in snap.unindexed:
            if self._usable(pack):
                out.extend(pack.index.ids.ids_in_bucket(first_byte))
        return out

    def bucket_block(self, first_byte: int) -> bytes:
        """What ids_in_bucket lists, concatenated; with one healthy multi-pack-index and no
        other pack (the usual case), a slice of the midx itself."""
        snap = self._snap
        if snap.midx is not None and not snap.unindexed and all(self._alive(snap)):
            return snap.midx.ids.bucket_block(first_byte)
        return b"".join(self.ids_in_bucket(first_byte))

    def single_table(self) -> bool:
        """Whether bucket_block is one index's slice (sorted, each id once), not a concatenation."""
        snap = self._snap
        return (snap.midx is not None and not snap.unindexed) or (snap.midx is None and len(snap.unindexed) <= 1)

    def _alive(self, snap: Snapshot) -> list[bool]:
        """Per midx pack id: whether that pack can still be read."""
        return [p is not None and self._usable(p) for p in snap.midx_packs]

    def _live_midx_ids(self, snap: Snapshot, first_byte: int) -> list[bytes]:
        midx = snap.midx
        ids = midx.ids.ids_in_bucket(first_byte)
        alive = self._alive(snap)
        if all(alive):
            return ids
        # Some named packs are gone or broken: list only the objects that can still be read.
        lo, _ = midx.ids.bucket_range(first_byte)
        out = []
        for k, raw in enumerate(ids):
            hit = midx.entry_at(lo + k)
            if hit is not None and alive[hit[0]]:
                out.append(raw)
        return out

    def prefix_matches(self, raw_prefix: bytes, hex_prefix: str, limit: int) -> set[bytes]:
        snap = self._snap
        found = set()
        if snap.midx is not None:
            midx = snap.midx
            matches = midx.ids.prefix_matches(raw_prefix, hex_prefix, limit)
            alive = self._alive(snap)
            if all(alive):
                found.update(matches)
            else:
                # As listings do: an object whose pack is gone is no candidate.
                for raw in matches:
                    hit = midx.entry_at(midx.ids.find(raw))
                    if hit is not None and alive[hit[0]]:
                        found.add(raw)
        for pack in snap.unindexed:
            if self._usable(pack):
                found.update(pack.index.ids.prefix_matches(raw_prefix, hex_prefix, limit))
        return found

    def pack_names(self) -> list[str]:
        return sorted(self._snap.packs)
