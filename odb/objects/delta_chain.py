"""Rebuilding packed objects: delta chains walked iteratively, across packs, with a base cache."""

from __future__ import annotations

import errno
from typing import Callable, NamedTuple

from . import delta
from ..pack import entry as pack_entry
from ..errors import CorruptObject
from ..lru import ByteLRU
from ..pack.entry import OFS_DELTA
from ..pack.packfile import Pack
from ..tuning import MAX_KINDS
from .. import accelerators

# git caps pack.depth at 4095; anything much deeper is hostile, not history.
MAX_DEPTH = 5000
DELTA_HEADER_BYTES = 20  # two varints of at most 10 bytes each
# git never deltifies a file above core.bigFileThreshold (512 MiB by default), so a
# delta claiming more than this is hostile: a few KB of 16 MiB copies can claim 100 GB.
MAX_DELTA_RESULT = 1 << 30
# The most output one delta byte can make: a copy opcode with one size byte (0x80|0x40, n)
# copies n << 16 bytes, so 2 bytes make at most 0xff0000.
MAX_DELTA_EXPANSION = 0xFF0000 // 2


class Location(NamedTuple):
    """Where one object lives: a pack entry, or (pack None) a loose object of `source`."""

    source: object  # the ObjectsDir that holds it
    pack: Pack | None
    offset: int
    raw: bytes


def _loose(loc: Location, read):
    """A loose object's (type, data) or (type, size). Gone means git pruned or packed it
    since the lookup: FileNotFoundError, which the store answers by looking again."""
    hit = read(loc.raw)
    if hit is None:
        raise FileNotFoundError(errno.ENOENT, "loose object vanished", loc.source.loose.path(loc.raw))
    return hit


def packed_size(pack: Pack, offset: int) -> int:
    """The size of the object whose entry is at offset: for a delta, the result size its own
    header claims. odb/_sizes.c mirrors this, check for check, for many entries at once."""
    entry, head = pack.header(offset)
    if entry.type < OFS_DELTA:
        return entry.size
    return delta_result_size(pack, entry, head)


def delta_result_size(pack: Pack, entry, head: bytes = b"") -> int:
    try:
        _, result_size, _ = delta.read_sizes(pack.inflate_prefix(entry, DELTA_HEADER_BYTES, head))
    except delta.DeltaError as e:
        raise CorruptObject(pack.pack_path, entry.offset, f"bad delta header: {e}") from None
    if result_size > entry.size * MAX_DELTA_EXPANSION:
        raise CorruptObject(pack.pack_path, entry.offset,
                            f"delta claims a {result_size}-byte result, more than its {entry.size} bytes can make")
    if result_size > MAX_DELTA_RESULT:
        # The read refuses it, so the size does too: a reader trusting st_size would
        # otherwise try to allocate what a few hundred hostile bytes claim.
        raise CorruptObject(pack.pack_path, entry.offset,
                            f"delta result of {result_size} bytes is over the {MAX_DELTA_RESULT >> 20} MiB limit")
    return result_size


Finder = Callable[[bytes], "Location | None"]


# odb/_engine.c, or None when it was not built; `engine` is what ChainReader uses by default
# (GITFS_PURE_PYTHON=1: none, and reads walk chains in Python around zlib and odb.objects.delta).
compiled, engine, IMPLEMENTATION = accelerators.load("_engine")


def engine_limits(raw_len: int) -> tuple:
    # Read at each call, so that the compiled path can never drift from this one (tests lower them).
    return (pack_entry.MAX_INFLATE_RATIO, MAX_DEPTH, MAX_DELTA_RESULT, delta.MAX_VARINT_BYTES, raw_len,
            DELTA_HEADER_BYTES, MAX_DELTA_EXPANSION)


class ChainReader:
    """Reads packed objects through their delta chains, in C (odb/_engine.c) when `engine` is
    given, which it is by default when built; its base cache is then the engine's, which every
    thread shares and which is bounded in bytes the same way."""

    def __init__(self, find: Finder, cache_bytes: int, engine=None, *, pure: bool = False):
        self._find = find
        if engine is None and not pure:
            engine = globals()["engine"]  # looked up now: tests switch it per run
        self._engine = engine
        self.cache = ByteLRU(cache_bytes) if engine is None else engine.Cache(cache_bytes)
        self.engine_cache = None if engine is None else self.cache
        # Whole-object kinds per pack and entry offset (kept on the packs, so they go with
        # them): a header walk of a chain happens once. A new epoch forgets them all.
        self._kinds_epoch = object()
        self._kinds_count = 0
        # The engine's memo of the same, which its header walks read and fill without the GIL.
        self._kinds_memo = engine.Kinds(MAX_KINDS) if engine is not None and hasattr(engine, "Kinds") else None

    def _base_location(self, pack: Pack, entry) -> Location:
        if entry.type == OFS_DELTA:
            return Location(None, pack, entry.base_offset, b"")
        loc = self._find(entry.base_id)
        if loc is None:
            raise CorruptObject(pack.pack_path, entry.offset, f"delta base {entry.base_id.hex()} is missing")
        return loc

    def _walk(self, loc: Location, steps: list) -> tuple[int, bytes]:
        """Follows bases until a whole object or a cached one; appends the deltas to `steps`."""
        ref_targets = set()  # chains can loop only through REF_DELTA: OFS bases lie before
        cache = self.cache
        while True:
            pack = loc.pack
            if pack is None:
                return _loose(loc, loc.source.loose.read)
            key = (pack, loc.offset)
            # The object itself too: an earlier read may have rebuilt it as someone's base.
            cached = cache.get(key)
            if cached is not None:
                return cached
            entry = pack.entry(loc.offset)
            if entry.type < OFS_DELTA:
                data = pack.inflate(entry)
                if steps:
                    cache.put(key, (entry.type, data), len(data))
                return entry.type, data
            if len(steps) >= MAX_DEPTH:
                raise CorruptObject(pack.pack_path, loc.offset, f"delta chain deeper than {MAX_DEPTH}")
            steps.append((pack, entry))
            loc = self._base_location(pack, entry)
            if entry.type != OFS_DELTA:
                if (loc.pack, loc.offset) in ref_targets:
                    raise CorruptObject(pack.pack_path, entry.offset, "delta chain loops")
                ref_targets.add((loc.pack, loc.offset))

    def read(self, loc: Location) -> tuple[int, bytes]:
        if self._engine is not None:
            return self._read_compiled(loc)
        steps: list = []
        kind, data = self._walk(loc, steps)
        last = len(steps) - 1
        for k in range(last, -1, -1):
            pack, entry = steps[k]
            try:
                instructions = pack.inflate(entry)
                result_size = delta.read_sizes(instructions)[1]
                if result_size > MAX_DELTA_RESULT:
                    raise delta.DeltaError(
                        f"delta result of {result_size} bytes is over the {MAX_DELTA_RESULT >> 20} MiB limit")
                data = delta.apply_delta(data, instructions)
            except delta.DeltaError as e:
                raise CorruptObject(pack.pack_path, entry.offset, f"bad delta: {e}") from None
            if k:  # intermediate results are bases of what follows; keep them
                self.cache.put((pack, entry.offset), (kind, data), len(data))
        return kind, data

    def _read_compiled(self, loc: Location) -> tuple[int, bytes]:
        """read() through odb/_engine.c. The engine walks OFS_DELTA chains itself; at a REF_DELTA
        it asks for the base, which is found here and read in turn (an explicit stack of the
        reads waiting for their bases, as in _walk), then handed back."""
        read = self._engine.read
        cache = self.cache
        waiting = []  # (location, REF_DELTA offset, depth) of reads waiting for that entry's base
        ref_targets = set()  # chains can loop only through REF_DELTA: OFS bases lie before
        depth = 0
        given = None
        while True:
            pack = loc.pack
            if pack is None:
                result = _loose(loc, loc.source.loose.read)
            else:
                buf, end, windows = pack.engine_source()
                answer, touched = read(cache, buf, end, loc.offset, pack.key, windows,
                                       engine_limits(pack.format.raw_len), depth, given, bool(waiting))
                del buf
                if touched:
                    pack.touched(touched)
                code = answer[0]
                if code < 0:
                    raise CorruptObject(pack.pack_path, answer[1], answer[2])
                if code == 0:
                    _, ref_offset, base_id, walked = answer
                    base = self._find(base_id)
                    if base is None:
                        raise CorruptObject(pack.pack_path, ref_offset, f"delta base {base_id.hex()} is missing")
                    if (base.pack, base.offset) in ref_targets:
                        raise CorruptObject(pack.pack_path, ref_offset, "delta chain loops")
                    ref_targets.add((base.pack, base.offset))
                    waiting.append((loc, ref_offset, depth))
                    loc, depth, given = base, walked, None
                    continue
                result = answer
            if not waiting:
                return result
            loc, ref_offset, depth = waiting.pop()
            given = (ref_offset, result[0], result[1])

    def read_many(self, pack: Pack, offsets) -> list:
        """read() of many entries of one pack: (kind, bytes), or the CorruptObject it raises, per
        offset, in the order given. The engine reads them in pack order in one call (bases come
        before their deltas there, so the base cache serves most chains); REF_DELTA entries and
        the Python path go one by one through read()."""
        answers: list = [None] * len(offsets)
        if self._engine is not None:
            buf, end, windows = pack.engine_source()
            got, touched = self._engine.read_many(self.cache, buf, end, offsets, pack.key, windows,
                                                  engine_limits(pack.format.raw_len))
            del buf
            if touched:
                pack.touched(touched)
            for k, answer in enumerate(got):
                if answer[0] > 0:
                    answers[k] = answer
                elif answer[0] < 0:
                    answers[k] = CorruptObject(pack.pack_path, answer[1], answer[2])
        for k in sorted(range(len(offsets)), key=offsets.__getitem__):
            if answers[k] is None:
                try:
                    answers[k] = self.read(Location(None, pack, offsets[k], b""))
                except CorruptObject as e:
                    answers[k] = e
        return answers

    def header(self, loc: Location) -> tuple[int, int]:
        """(type code, size) from headers alone: a delta's size is in its first bytes."""
        pack = loc.pack
        if pack is None:
            return _loose(loc, loc.source.loose.read_header)
        if self._engine is not None:
            buf, end, windows = pack.engine_source()
            # Headers are read with pread through the descriptor (held across the call, so its
            # number cannot be reused meanwhile): they map nothing (docs/performance.md, "What
            # bounds read_header"). A small pack is bytes already: no descriptor.
            source, _ = pack.header_source()
            fd = -1 if isinstance(source, bytes) else source.fd
            (answer,), touched = self._engine.headers(buf, end, (loc.offset,), windows,
                                                      engine_limits(pack.format.raw_len), fd,
                                                      self._kinds_memo, pack.key)
            del buf, source
            if touched:
                pack.touched(touched)
            if answer[0] < 0:
                raise CorruptObject(pack.pack_path, answer[1], answer[2])
            if answer[0]:
                return answer
            # A REF_DELTA under it: the walk below types it, finding that base by id.
        entry, head = pack.header(loc.offset)
        if entry.type < OFS_DELTA:
            self._remember([(self._kinds_of(pack), loc.offset)], entry.type)
            return entry.type, entry.size
        return self.kind(loc, entry), delta_result_size(pack, entry, head)

    def size(self, loc: Location) -> int:
        """The object's size alone: for a delta, from its own header, without typing the chain
        (as `git cat-file -s` does). A broken chain below shows when the object is read."""
        pack = loc.pack
        if pack is None:
            return _loose(loc, loc.source.loose.read_header)[1]
        return packed_size(pack, loc.offset)

    def kind(self, loc: Location, entry) -> int:
        """The type of the whole object at the bottom of a delta chain, by headers only.

        Every entry the walk passes, the whole object at the bottom included, is typed in
        its pack's memo: in a walk over many objects most chains end in bases already typed.
        """
        pack = loc.pack
        known = self._kinds_of(pack)
        offset = entry.offset
        walked = []
        ref_targets = set()  # chains can loop only through REF_DELTA: OFS bases lie before
        code = known.get(offset)
        while code is None:
            walked.append((known, offset))
            if entry.type < OFS_DELTA:
                code = entry.type
                break
            if len(walked) > MAX_DEPTH:
                raise CorruptObject(pack.pack_path, offset, f"delta chain deeper than {MAX_DEPTH}")
            if entry.type == OFS_DELTA:
                offset = entry.base_offset
            else:
                base = self._base_location(pack, entry)
                if base.pack is None:
                    code = self.header(base)[0]
                    break
                if (base.pack, base.offset) in ref_targets:
                    raise CorruptObject(pack.pack_path, offset, "delta chain loops")
                ref_targets.add((base.pack, base.offset))
                if base.pack is not pack:
                    pack, known = base.pack, self._kinds_of(base.pack)
                offset = base.offset
            code = known.get(offset)
            if code is None:
                entry = pack.header(offset)[0]
        self._remember(walked, code)
        return code

    def _kinds_of(self, pack: Pack) -> dict:
        if pack.kinds_epoch is not self._kinds_epoch:
            pack.kinds = {}
            pack.kinds_epoch = self._kinds_epoch
        return pack.kinds

    def _remember(self, walked: list, code: int) -> None:
        self._kinds_count += len(walked)
        if self._kinds_count > MAX_KINDS:  # bounded: a plain reset beats LRU bookkeeping here
            self._kinds_epoch = object()
            self._kinds_count = len(walked)
        for known, offset in walked:
            known[offset] = code
