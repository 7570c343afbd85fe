"""The object store: one repository's packs, loose objects and alternates behind one API."""

from __future__ import annotations

import errno
import logging
import os
from typing import Iterator, NamedTuple

from .delta_chain import ChainReader, Location
from .errors import AmbiguousPrefix, CorruptObject, NotARepository, ObjectNotFound
from .loose import LooseObjects
from .kinds import KINDS, Kind
from .oid import ObjectFormat, Prefix, is_hex, parse_oid
from .pack_backend import PackBackend
from .repository import find_objects_dir, object_format, read_alternates

log = logging.getLogger("odb")

DEFAULT_CACHE_SIZE = 96 << 20  # git's core.deltaBaseCacheLimit
MAX_ALTERNATE_DEPTH = 5  # as git's link_alt_odb_entries
STREAM_THRESHOLD = 1 << 20  # smaller objects are simply read whole
MIN_PREFIX = 4
MAX_CANDIDATES = 1000


class ObjectInfo(NamedTuple):
    kind: str
    size: int
    source: str  # pack file name, "loose", or either behind "alternate:<objects dir>:"
    offset: int | None  # packed objects only
    delta_base: str | None  # hex id of the base, for objects stored as deltas


class ObjectsDir:
    """One objects directory: its packs (multi-pack-index first), then its loose objects."""

    def __init__(self, path: str, fmt: ObjectFormat, label: str):
        self.path = path
        self.label = label
        self.packs = PackBackend(os.path.join(path, "pack"), fmt)
        self.loose = LooseObjects(path, fmt)
        self._loose_stamp = self.loose.bucket_mtimes()

    def locations(self, raw: bytes) -> Iterator[Location]:
        hit = self.packs.find(raw)
        if hit is not None:
            yield Location(self, hit[0], hit[1], raw)
        if self.loose.contains(raw):
            yield Location(self, None, 0, raw)

    def first_location(self, raw: bytes) -> Location | None:
        """What locations() yields first, without a generator: the per-object fast path."""
        hit = self.packs.find(raw)
        if hit is not None:
            return tuple.__new__(Location, (self, hit[0], hit[1], raw))  # Location(...), minus a Python call
        if self.loose.contains(raw):
            return Location(self, None, 0, raw)
        return None

    def refresh(self, bucket: int | None = None) -> bool:
        changed = self.packs.refresh()
        if bucket is not None:
            # Loose objects are always read live; the fingerprint only answers "changed?",
            # and one stat beats 256 when a single bucket is being listed.
            stamp = self.loose.bucket_mtime(bucket)
            if stamp != self._loose_stamp[bucket]:
                self._loose_stamp[bucket] = stamp
                changed = True
            return changed
        stamp = self.loose.bucket_mtimes()
        if stamp != self._loose_stamp:
            self._loose_stamp = stamp
            changed = True
        return changed

    def ids_in_bucket(self, first_byte: int) -> list[str]:
        """Hex ids of the bucket, packed then loose; duplicates possible, order not promised."""
        joined = self.packs.bucket_block(first_byte).hex()  # one hex() call, not one per id
        n = 2 * self.loose.format.raw_len
        out = [joined[i : i + n] for i in range(0, len(joined), n)]
        out += self.loose.hex_in_bucket(first_byte)
        return out

    def nonempty_buckets(self) -> set[int]:
        return self.packs.nonempty_buckets() | self.loose.nonempty_buckets()

    def prefix_matches(self, prefix: Prefix) -> set[str]:
        out = {r.hex() for r in self.packs.prefix_matches(prefix, MAX_CANDIDATES)}
        out.update(h for h in self.loose.hex_in_bucket(prefix.first_byte) if h.startswith(prefix.hex))
        return out


class ObjectStream:
    """An object's bytes, read front to back; big blobs inflate piece by piece as they are read."""

    def __init__(self, kind: str, size: int, chunks):
        self.kind = kind
        self.size = size
        self._chunks = iter(chunks)
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buf[self._pos :], *self._chunks]
            self._buf, self._pos = b"", 0
            return b"".join(parts)
        while len(self._buf) - self._pos < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close:
            close()
        self._buf = b""


class Store:
    def __init__(self, objects_dir: str, fmt: ObjectFormat, *, verify: bool = False,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        self.objects_dir = objects_dir
        self.format = fmt
        self.verify = verify
        self._dirs = [ObjectsDir(objects_dir, fmt, "")] + [
            ObjectsDir(path, fmt, f"alternate:{path}:") for path in self._alternates(objects_dir)
        ]
        self._reader = ChainReader(self._find, cache_size)

    @staticmethod
    def _alternates(objects_dir: str) -> list[str]:
        """Alternates in git's order (depth first), each once, the repository itself never."""
        seen = {os.path.realpath(objects_dir)}
        out = []
        stack = [(path, 1) for path in reversed(read_alternates(objects_dir))]
        while stack:
            path, depth = stack.pop()
            real = os.path.realpath(path)
            if real in seen:
                log.warning("ignoring alternate %s: it loops back", path)
                continue
            if depth > MAX_ALTERNATE_DEPTH:
                log.warning("ignoring alternate %s: nested more than %d deep", path, MAX_ALTERNATE_DEPTH)
                continue
            if not os.path.isdir(path):
                log.warning("ignoring alternate %s: not a directory", path)
                continue
            seen.add(real)
            out.append(path)
            stack.extend((p, depth + 1) for p in reversed(read_alternates(path)))
        return out

    # -- finding ---------------------------------------------------------------

    def _find(self, raw: bytes) -> Location | None:
        for d in self._dirs:
            loc = d.first_location(raw)
            if loc is not None:
                return loc
        return None

    def _locations(self, raw: bytes) -> Iterator[Location]:
        for d in self._dirs:
            yield from d.locations(raw)

    def _first_good(self, oid, action):
        """Runs action on the object's first location, and on its other copies only if that
        one is damaged: damage in one pack must not hide a good copy elsewhere. A miss
        refreshes once and retries, since git may have just repacked."""
        raw = parse_oid(oid, self.format)
        loc = self._find(raw)
        if loc is not None:
            try:
                return action(raw, loc)
            except (CorruptObject, OSError, ValueError):
                pass  # the careful path below starts over, and reports what it sees
        return self._each_location(raw, action)

    def _each_location(self, raw: bytes, action):
        locs = self._locations(raw)
        loc = next(locs, None)
        if loc is None and self.refresh():
            locs = self._locations(raw)
            loc = next(locs, None)
        if loc is None:
            raise ObjectNotFound(raw.hex())
        first_error = None
        retried = False
        while loc is not None:
            try:
                return action(raw, loc)
            except FileNotFoundError:
                # git repacked or pruned between the lookup and the read: look again, once.
                # Another thread may have refreshed already, so retry whatever refresh says.
                if retried:
                    raise ObjectNotFound(raw.hex()) from None
                retried = True
                self.refresh()
                locs = self._locations(raw)
                loc = next(locs, None)
                if loc is None:
                    raise ObjectNotFound(raw.hex()) from None
                continue
            except (CorruptObject, OSError, ValueError) as e:
                error = e if isinstance(e, CorruptObject) else CorruptObject(self._where(loc), loc.offset, str(e))
                if error.oid is None:
                    error.oid = raw.hex()
                log.warning("object %s: %s", raw.hex(), error)
                first_error = first_error or error
            loc = next(locs, None)
        raise first_error

    # -- reading ---------------------------------------------------------------

    def read(self, oid) -> tuple[str, bytes]:
        return self._first_good(oid, self._read_at)

    def _read_at(self, raw: bytes, loc: Location) -> tuple[str, bytes]:
        code, data = self._reader.read(loc)
        kind = KINDS[code]
        if self.verify and self.format.hash_object(kind, data) != raw:
            raise CorruptObject(self._where(loc), loc.offset if loc.pack else None,
                                "content does not hash to its id")
        return kind, data

    def read_header(self, oid) -> tuple[str, int]:
        return self._first_good(oid, self._header_at)

    def read_size(self, oid) -> int:
        """The object's size: read_header without the type, so a delta's chain is not walked."""
        return self._first_good(oid, self._size_of)

    def _size_of(self, raw: bytes, loc: Location) -> int:
        return self._reader.size(loc)

    def _header_at(self, raw: bytes, loc: Location) -> tuple[str, int]:
        code, size = self._reader.header(loc)
        return KINDS[code], size

    def locate(self, oid) -> ObjectInfo:
        return self._first_good(oid, self._info_at)

    def _info_at(self, raw: bytes, loc: Location) -> ObjectInfo:
        kind, size = self._header_at(raw, loc)
        label = loc.source.label
        if loc.pack is None:
            return ObjectInfo(kind, size, label + "loose", None, None)
        entry = loc.pack.header(loc.offset)[0]
        base = None
        if entry.base_id is not None:
            base = entry.base_id.hex()
        elif entry.base_offset >= 0:
            base_raw = loc.source.packs.id_at_offset(loc.pack, entry.base_offset)
            base = base_raw.hex() if base_raw is not None else None
        return ObjectInfo(kind, size, label + loc.pack.name, loc.offset, base)

    def open_stream(self, oid) -> ObjectStream:
        return self._first_good(oid, self._stream_at)

    def _stream_at(self, raw: bytes, loc: Location) -> ObjectStream:
        kind, size = self._header_at(raw, loc)
        if size >= STREAM_THRESHOLD and not self.verify:
            if loc.pack is None:
                opened = loc.source.loose.iter_read(raw)
                if opened is None:
                    raise FileNotFoundError(errno.ENOENT, "loose object vanished", loc.source.loose.path(raw))
                code, size, chunks = opened
                return ObjectStream(KINDS[code], size, chunks)
            entry = loc.pack.entry(loc.offset)
            if not Kind(entry.type).is_delta:
                return ObjectStream(kind, size, loc.pack.iter_inflate(entry))
        kind, data = self._read_at(raw, loc)
        return ObjectStream(kind, len(data), (data,))

    @staticmethod
    def _where(loc: Location) -> str:
        return loc.pack.pack_path if loc.pack else loc.source.loose.path(loc.raw)

    # -- listing ---------------------------------------------------------------

    def list_bucket(self, first_byte: int) -> list[str]:
        """The sorted, de-duplicated hex ids whose first byte is first_byte."""
        if not 0 <= first_byte <= 255:
            raise ValueError("a bucket is a byte, 0 to 255")
        found = [ids for ids in (d.ids_in_bucket(first_byte) for d in self._dirs) if ids]
        if len(found) == 1:
            # Usually one multi-pack-index lists them all, sorted already: dict.fromkeys drops
            # duplicates in C and sorting a sorted list is linear.
            return sorted(dict.fromkeys(found[0]))
        return sorted(set().union(*found))

    iter_bucket = list_bucket  # the older name: it always returned a list

    def nonempty_buckets(self) -> list[int]:
        """The first bytes that at least one object has: the root listing, without listing ids."""
        found: set[int] = set()
        for d in self._dirs:
            found |= d.nonempty_buckets()
        return sorted(found)

    def __iter__(self) -> Iterator[str]:
        for b in range(256):
            yield from self.list_bucket(b)

    def resolve_prefix(self, prefix: str) -> str:
        prefix = prefix.lower()
        if not MIN_PREFIX <= len(prefix) <= self.format.hex_len or not is_hex(prefix):
            raise ObjectNotFound(prefix)
        found = self._prefix_matches(prefix)
        if not found and self.refresh():
            found = self._prefix_matches(prefix)
        if not found:
            raise ObjectNotFound(prefix)
        if len(found) > 1:
            raise AmbiguousPrefix(prefix, sorted(found))
        return found.pop()

    def _prefix_matches(self, digits: str) -> set[str]:
        prefix = Prefix.from_hex(digits)
        found: set[str] = set()
        for d in self._dirs:
            found |= d.prefix_matches(prefix)
        return found

    # -- upkeep ----------------------------------------------------------------

    def refresh(self, bucket: int | None = None) -> bool:
        """Re-checks packs, the multi-pack-index and loose objects (only those of `bucket`
        when one is given); True if anything changed. Cheap: stats, no reading."""
        changed = False
        for d in self._dirs:
            changed |= d.refresh(bucket)
        return changed

    def close(self) -> None:
        self._reader.cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open(path, *, verify: bool = False, cache_size: int = DEFAULT_CACHE_SIZE) -> Store:  # noqa: A001
    """Opens the object database of a repository; NotARepository when there is none."""
    objects_dir, git_dir = find_objects_dir(os.fspath(path))
    fmt = object_format(objects_dir, git_dir)
    try:
        return Store(objects_dir, fmt, verify=verify, cache_size=cache_size)
    except OSError as e:
        raise NotARepository(f"{path}: {e.strerror}") from None
