"""The object store: one repository's packs, loose objects and alternates behind one API.

Its parts, each in a module of its own: one objects directory (odb/objects_dir.py), the
alternates found in git's order (odb/alternates.py), the lookup and its rule for misses and
damage (odb/lookup.py, the base of Store), sizes in bulk (odb/bulk_sizes.py), and the stream
open_stream gives (odb/object_stream.py).
"""

from __future__ import annotations

import errno
import logging
import os
from array import array
from typing import Iterator, NamedTuple

from . import bulk_sizes, refused_paths
from .access import Access, AccessRules
from .alternates import open_alternates
from .anchor import Anchor
from .objects.delta_chain import ChainReader, Location
from .errors import (AccessDenied, AmbiguousPrefix, CorruptObject, NotARepository, ObjectNotFound, RepositoryGone,
                     display_path)
from .objects.kinds import KINDS, Kind
from .lookup import Lookup
from .object_stream import ObjectStream
from .objects_dir import ObjectsDir, bucket_ids_in, confined, nonempty_buckets_in, prefix_matches_in
from .oid import ObjectFormat, Prefix, is_hex
from .pack_order import pack_order
from .refused_paths import SelfReference, real_or_none
from .repository import discover
from .tuning import DEFAULT_CACHE_SIZE, STREAM_THRESHOLD

log = logging.getLogger("odb")

MIN_PREFIX = 4


class ObjectInfo(NamedTuple):
    kind: str
    size: int
    source: str  # pack file name, "loose", or either behind "alternate:<objects dir>:"
    offset: int | None  # packed objects only
    delta_base: str | None  # hex id of the base, for objects stored as deltas


class Store(Lookup):
    """One repository's objects. See odb/__init__.py for the API; git_dir and common_dir are
    what odb.open() found (None for a bare objects directory)."""

    def __init__(self, objects_dir: str, fmt: ObjectFormat, *, verify: bool = False,
                 cache_size: int = DEFAULT_CACHE_SIZE, git_dir: str | None = None,
                 common_dir: str | None = None, alternates=()):
        self.objects_dir = objects_dir
        self.format = fmt
        self.verify = verify
        self.git_dir = git_dir
        self.common_dir = common_dir
        try:
            main = ObjectsDir(objects_dir, fmt, "")
        except PermissionError as e:
            raise AccessDenied(e.filename or objects_dir) from None
        self._dirs = [main] + open_alternates(objects_dir, fmt, list(alternates))
        self._main = main
        # The directories, held open: a repository renamed while open is followed (odb/anchor.py).
        self._anchors = {name: _anchor(path) for name, path in
                         (("objects_dir", objects_dir), ("git_dir", git_dir), ("common_dir", common_dir))
                         if path is not None}
        self.gone: str | None = None  # why, once the repository was deleted under the store
        self._reader = ChainReader(self._find, cache_size)
        # Bumped by every refresh that saw a change: what callers compare to tell whether
        # anything they derived from the store (listings, cached bytes) may be stale.
        self.generation = 0
        self._access = AccessRules()
        if refused_paths.active():
            self._apply_refusal()

    # -- what the store reads, and what it must never read ---------------------

    def directories(self) -> list[str]:
        """Real paths of every directory the store reads: the git dir and common dir (if any),
        the objects directory and each alternate's. A mount point must be none of these and
        lie below none of them."""
        named = [self.git_dir, self.common_dir] + [d.path for d in self._dirs]
        out = []
        for path in named:
            real = real_or_none(path) if path is not None else None
            if real is not None and real not in out:
                out.append(real)
        return out

    def refuse_under(self, path) -> None:
        """From now on nothing at or below path (the mount point, before mounting) is opened:
        an object whose file leads there reads as CorruptObject, an objects directory that
        leads there is ignored with one warning. For the whole process (see refused_paths)."""
        refused_paths.refuse(path)
        self._apply_refusal()

    def _apply_refusal(self) -> None:
        self._dirs = confined(self._dirs)

    # -- who may read what -----------------------------------------------------

    def root_access(self) -> Access:
        """The Access of the objects directory, for the mount's root and buckets (see
        odb/access.py for the rule): masked also by each alternate's directories."""
        listed = [p for d in self._dirs for p in (d.path, d.pack_dir) if d.has(p)]
        return self._access.for_directory(self.objects_dir, listed)

    def stat(self, oid) -> tuple[int, Access]:
        """(size, as read_size gives it; the Access of the file that holds the object)."""
        return self._first_good(oid, self._stat_at)

    def _stat_at(self, raw: bytes, loc: Location) -> tuple[int, Access]:
        if loc.pack is not None:
            return self._reader.size(loc), self._access.for_pack(loc.pack)
        loose = loc.source.loose
        found = loose.header_and_stat(raw)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "loose object vanished", loose.path(raw))
        _, size, st, linked = found
        path = loose.path(raw)
        return size, self._access.for_file(path[: path.rindex("/")], st, path if linked else None)

    @property
    def engine_cache(self):
        """The compiled engine's delta-base cache (an odb._engine.Cache) that every reader of
        this store shares, compiled ones included (odb/engine_api.h); None on the Python path."""
        return self._reader.engine_cache

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

    def read_sizes(self, ids: bytes) -> tuple[array, dict[int, Exception]]:
        """The sizes of the objects whose raw ids are concatenated in ids, in order, each as
        read_size gives it; -1 where the dict (index -> exception) holds what read_size raises.
        Packs answer many at once, anything else goes through read_size itself (odb/bulk_sizes.py)."""
        return bulk_sizes.read_sizes(ids, self._dirs, self.format.raw_len, self.read_size)

    def stat_many(self, ids: bytes) -> tuple[array, dict[int, Exception], list]:
        """read_sizes with each object's Access beside its size, as stat gives both: (sizes,
        errors by index, Access by index, None where the size is an error)."""
        return bulk_sizes.stat_many(ids, self._dirs, self.format.raw_len, self.stat, self._access)

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
                code, size, inflation = opened
                return ObjectStream(KINDS[code], size, inflation)
            entry = loc.pack.entry(loc.offset)
            if not Kind(entry.type).is_delta:
                return ObjectStream(kind, size, loc.pack.iter_inflate(entry))
        kind, data = self._read_at(raw, loc)
        return ObjectStream(kind, len(data), data)

    # -- listing ---------------------------------------------------------------

    def bucket_has_objects(self, first_byte: int) -> bool:
        """Whether the bucket holds any object, after a refresh (looked at again as a miss is:
        a bucket that git empties of loose objects by packing them is not reported empty)."""
        return bool(self._after_refresh(lambda: self.bucket_ids(first_byte), first_byte))

    def bucket_ids(self, first_byte: int) -> bytes:
        """The bucket's raw ids, sorted, each once, concatenated: what a listing holds."""
        if not 0 <= first_byte <= 255:
            raise ValueError("a bucket is a byte, 0 to 255")
        return bucket_ids_in(self._dirs, first_byte, self.format.raw_len)

    def pack_order(self, ids: bytes) -> array:
        """The positions of the concatenated raw ids in the order that reads them fastest: by
        pack and offset (odb/pack_order.py)."""
        return pack_order(ids, self._dirs, self.format.raw_len)

    def list_bucket(self, first_byte: int) -> list[str]:
        """The bucket's hex ids, sorted, each once."""
        block = self.bucket_ids(first_byte).hex()
        n = self.format.hex_len
        return [block[i : i + n] for i in range(0, len(block), n)]

    iter_bucket = list_bucket  # the older name: it always returned a list

    def nonempty_buckets(self) -> list[int]:
        """The first bytes that at least one object has: the root listing, without listing ids."""
        return nonempty_buckets_in(self._dirs)

    def __iter__(self) -> Iterator[str]:
        for b in range(256):
            yield from self.list_bucket(b)

    def resolve_prefix(self, prefix: str) -> str:
        prefix = prefix.lower()
        if not MIN_PREFIX <= len(prefix) <= self.format.hex_len or not is_hex(prefix):
            raise ObjectNotFound(prefix)
        found = self._prefix_matches(prefix) or self._after_refresh(lambda: self._prefix_matches(prefix))
        if not found:
            raise ObjectNotFound(prefix)
        if len(found) > 1:
            raise AmbiguousPrefix(prefix, sorted(found))
        return found.pop()

    def _prefix_matches(self, digits: str) -> set[str]:
        return prefix_matches_in(self._dirs, Prefix.from_hex(digits))

    # -- upkeep ----------------------------------------------------------------

    def refresh(self, bucket: int | None = None) -> bool:
        """Re-checks packs, the multi-pack-index and loose objects (only those of `bucket`
        when one is given); True if anything changed. Cheap: stats, no reading.
        RepositoryGone if the repository was deleted; one that was moved is followed."""
        changed = self.follow_moves()
        if bucket is None:
            self._access.forget()  # owners and modes may have changed; a listing asks again
        for d in list(self._dirs):
            try:
                changed |= d.refresh(bucket)
            except SelfReference:
                log.warning("ignoring objects directory %s from now on: it resolves into the mount itself",
                            display_path(d.path))
                self._dirs = [k for k in self._dirs if k is not d]
                changed = True
        if changed:
            self.generation += 1
        return changed

    def follow_moves(self) -> bool:
        """Reads the repository where it is now, if it was moved (one stat when it was not)."""
        if self.gone is not None:
            raise RepositoryGone(self.gone)
        anchor = self._anchors.get("objects_dir")
        if anchor is None:
            return False
        try:
            new = anchor.moved()
            if new is None:
                return False
            for name in ("git_dir", "common_dir"):
                if name in self._anchors and self._anchors[name].moved() is not None:
                    setattr(self, name, self._anchors[name].path)
        except RepositoryGone as e:
            self.gone = str(e)
            log.error("the repository is gone: %s; nothing more can be read", e)
            raise
        old = self._main
        self._main = ObjectsDir(new, self.format, "")
        if old._confined is not None:
            self._main.confine()
        self._dirs = [self._main if d is old else d for d in self._dirs]
        log.warning("the repository moved: %s is now %s", display_path(self.objects_dir), display_path(new))
        self.objects_dir = new
        return True

    def held_path(self) -> str | None:
        """A path that leads to this repository wherever it is moved, for as long as this
        process lives: /proc/PID/fd/N of the directory it holds (None if it holds none).
        Another process of the same user opens the same store there (odb.open)."""
        anchor = self._anchors.get("git_dir") or self._anchors.get("objects_dir")
        return anchor.proc_path() if anchor is not None else None

    def release_memory(self) -> None:
        """Drops the delta bases kept for the next reads (they are made again when needed): what
        an idle reader gives back."""
        self._reader.cache.clear()

    def close(self) -> None:
        self._reader.cache.clear()
        for anchor in self._anchors.values():
            anchor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _anchor(path: str) -> Anchor | None:
    try:
        return Anchor(path)
    except OSError:  # (a bare objects directory has no git dir to hold, nor needs one)
        return None


def open(path, *, verify: bool = False, cache_size: int = DEFAULT_CACHE_SIZE, env=None) -> Store:  # noqa: A001
    """Opens the object database of a repository, found as git finds it (odb/repository.py;
    env: the environment whose GIT_DIR etc. count, os.environ by default). NotARepository when
    there is none, AccessDenied when it may not be read."""
    try:
        repo = discover(path, env)
        return Store(repo.objects_dir, repo.format, verify=verify, cache_size=cache_size,
                     git_dir=repo.git_dir, common_dir=repo.common_dir, alternates=repo.alternates)
    except PermissionError as e:
        raise AccessDenied(e.filename or os.fsdecode(path)) from None
    except OSError as e:
        raise NotARepository(f"{display_path(e.filename or path)}: {e.strerror}") from None
