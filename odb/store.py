"""The object store: one repository's packs, loose objects and alternates behind one API."""

from __future__ import annotations

import errno
import logging
import os
import stat
from array import array
from typing import Iterator, NamedTuple

from . import refused_paths, sizes
from .access import Access, AccessRules
from .anchor import Anchor
from .delta_chain import ChainReader, Location
from .errors import (AccessDenied, AmbiguousPrefix, CorruptObject, NotARepository, ObjectNotFound, OdbError,
                     RepositoryGone, display_path)
from .inflation import CHUNK, Inflation
from .kinds import KINDS, Kind
from .loose import DIR_FLAGS, LooseObjects
from .mapped_file import Descriptor
from .oid import ObjectFormat, Prefix, is_hex, parse_oid
from .pack.backend import PackBackend
from .refused_paths import SelfReference, resolve
from .repository import discover, read_alternates
from .sizes import MISSING
from .tuning import DEFAULT_CACHE_SIZE, STREAM_THRESHOLD

log = logging.getLogger("odb")

MAX_ALTERNATE_DEPTH = 5  # as git's link_alt_odb_entries
MIN_PREFIX = 4
MAX_CANDIDATES = 1000
# Times a read looks again when the file it was reading from vanished (git replaced the pack):
# under back-to-back repacks one more look was seen to miss (issue 17's maintenance flake).
MAX_VANISHED = 4
# Refreshes a miss may take while each finds the repository changed (see Store._after_refresh).
MAX_LOOKS = 4


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
        self.pack_dir = os.path.join(path, "pack")
        self._check_readable()
        self.packs = PackBackend(self.pack_dir, fmt)
        self.loose = LooseObjects(path, fmt)
        self._loose_stamp = self.loose.bucket_mtimes()
        self._confined: tuple | None = None  # identities of the directory and pack/ when confined
        self._has_pack_dir = os.path.isdir(self.pack_dir)

    def has(self, directory: str) -> bool:
        """Whether directory (this one or its pack/) exists, as seen when it was opened."""
        return directory == self.path or self._has_pack_dir

    def _check_readable(self) -> None:
        """PermissionError now if this process may not list the directory or its pack/, which
        the pack scan would otherwise take for "no packs" without a word."""
        for directory in (self.path, self.pack_dir):
            try:
                os.listdir(directory)
                os.stat(os.path.join(directory, "."))
            except (FileNotFoundError, NotADirectoryError):
                if directory == self.path:
                    raise
            except PermissionError as e:
                raise PermissionError(e.errno, e.strerror, directory) from None

    def confine(self) -> None:
        """Checks that this directory and its pack/ lead nowhere into a refused directory
        (SelfReference if they do); from now on loose objects are read through a descriptor of
        the directory, and the two are re-checked at each refresh."""
        self._real = resolve(self.path)
        resolve(self.pack_dir)
        self._root = Descriptor(os.open(self._real, DIR_FLAGS))
        self.loose.confine(self._root)
        self._confined = self._identities()

    def _identities(self) -> tuple:
        """What tells that neither the directory nor its pack/ was replaced (by a symlink, say):
        the pinned directory, what its real path names now, and pack/ (not followed)."""
        root = self._root.fd
        pinned, named = os.fstat(root), os.lstat(self._real)
        try:
            pack = os.stat("pack", dir_fd=root, follow_symlinks=False)
            pack = (pack.st_dev, pack.st_ino, stat.S_IFMT(pack.st_mode))
        except FileNotFoundError:
            pack = None
        return (pinned.st_dev, pinned.st_ino), (named.st_dev, named.st_ino, stat.S_IFMT(named.st_mode)), pack

    def _check_confined(self) -> None:
        """At each refresh of a confined directory: three stats while nothing moved; a careful
        resolve() again (SelfReference if it now leads into a refused directory) when it did."""
        now = self._identities()
        if now != self._confined:
            resolve(self.path)
            resolve(self.pack_dir)
            self._confined = now

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
            # Location(...) minus a Python-level __new__: 1.95 us a call against 2.09 us (63,970
            # ids of the bench repository; docs/performance.md, "Micro-optimisations").
            return tuple.__new__(Location, (self, hit[0], hit[1], raw))
        if self.loose.contains(raw):
            return Location(self, None, 0, raw)
        return None

    def refresh(self, bucket: int | None = None) -> bool:
        if self._confined is not None:
            self._check_confined()
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

    def ids_in_bucket(self, first_byte: int) -> tuple[bytes, bool, list[bytes]]:
        """The bucket's raw ids: packed ones concatenated, whether those are sorted and unique
        (one index lists them all, the usual case: PackBackend.bucket_block), and loose ones."""
        block, sorted_unique = self.packs.bucket_block(first_byte)
        return block, sorted_unique, [bytes.fromhex(h) for h in self.loose.hex_in_bucket(first_byte)]

    def nonempty_buckets(self) -> set[int]:
        return self.packs.nonempty_buckets() | self.loose.nonempty_buckets()

    def prefix_matches(self, prefix: Prefix) -> set[str]:
        out = {r.hex() for r in self.packs.prefix_matches(prefix, MAX_CANDIDATES)}
        out.update(h for h in self.loose.hex_in_bucket(prefix.first_byte) if h.startswith(prefix.hex))
        return out


class ObjectStream:
    """An object's bytes, read front to back. Big blobs inflate piece by piece as they are read
    (an Inflation), others are held whole; fork() gives an independent stream at the same point,
    to resume from later without starting over."""

    def __init__(self, kind: str, size: int, source: Inflation | bytes):
        self.kind = kind
        self.size = size
        self._source = source  # an Inflation, or the whole bytes
        self._buf = b""
        self._pos = 0
        self._offset = 0  # of the whole bytes, for the next read_chunk()

    @property
    def offset(self) -> int:
        """The object offset of the next byte read() returns."""
        source = self._source
        at = source.offset if isinstance(source, Inflation) else self._offset
        return at - (len(self._buf) - self._pos)

    def read_chunk(self) -> bytes:
        """The next piece of the object (at most 1 MiB when inflated as read); b"" at the end."""
        if self._pos < len(self._buf):
            out = self._buf[self._pos :]
            self._buf, self._pos = b"", 0
            return out
        return self._next_piece()

    def _next_piece(self) -> bytes:
        source = self._source
        if isinstance(source, Inflation):
            return source.next_chunk()
        out = source[self._offset : self._offset + CHUNK]
        self._offset += len(out)
        return out

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buf[self._pos :]]
            self._buf, self._pos = b"", 0
            while chunk := self._next_piece():
                parts.append(chunk)
            return b"".join(parts)
        while len(self._buf) - self._pos < n:
            chunk = self._next_piece()
            if not chunk:
                break
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def fork(self) -> ObjectStream:
        """An independent stream at this one's offset (sharing its input, not its state)."""
        source = self._source
        twin = ObjectStream(self.kind, self.size, source.copy() if isinstance(source, Inflation) else source)
        twin._buf, twin._pos, twin._offset = self._buf, self._pos, self._offset
        return twin

    def close(self) -> None:
        if isinstance(self._source, Inflation):
            self._source.close()
        self._source = b""
        self._buf, self._pos, self._offset = b"", 0, 0


class Store:
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
        self._dirs = [main] + self._open_alternates(objects_dir, fmt, list(alternates))
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

    @classmethod
    def _open_alternates(cls, objects_dir: str, fmt: ObjectFormat, named: list[str]) -> list[ObjectsDir]:
        out = []
        for path in cls._alternates(objects_dir, named):
            try:
                out.append(ObjectsDir(path, fmt, f"alternate:{path}:"))
            except OSError as e:
                log.warning("ignoring alternate %s: %s", display_path(path), e.strerror)
        return out

    @staticmethod
    def _alternates(objects_dir: str, named: list[str]) -> list[str]:
        """Alternates in git's order (those named by the environment, then info/alternates,
        each depth first), each once, the repository itself never."""
        seen = {_real_or_none(objects_dir)}
        out = []
        stack = [(path, 1) for path in reversed(named + read_alternates(objects_dir))]
        while stack:
            path, depth = stack.pop()
            real = _real_or_none(path)
            shown = display_path(path)
            if real is None:
                log.warning("ignoring alternate %s: it resolves into the mount itself", shown)
                continue
            if real in seen:
                log.warning("ignoring alternate %s: it loops back", shown)
                continue
            if depth > MAX_ALTERNATE_DEPTH:
                log.warning("ignoring alternate %s: nested more than %d deep", shown, MAX_ALTERNATE_DEPTH)
                continue
            if not os.path.isdir(real):
                log.warning("ignoring alternate %s: not a directory", shown)
                continue
            seen.add(real)
            out.append(path)
            stack.extend((p, depth + 1) for p in reversed(read_alternates(path)))
        return out

    # -- what the store reads, and what it must never read ---------------------

    def directories(self) -> list[str]:
        """Real paths of every directory the store reads: the git dir and common dir (if any),
        the objects directory and each alternate's. A mount point must be none of these and
        lie below none of them."""
        named = [self.git_dir, self.common_dir] + [d.path for d in self._dirs]
        out = []
        for path in named:
            real = _real_or_none(path) if path is not None else None
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
        kept = []
        for d in self._dirs:
            try:
                if d._confined is None:
                    d.confine()
            except SelfReference:
                log.warning("ignoring objects directory %s: it resolves into the mount itself", display_path(d.path))
                continue
            except OSError as e:
                log.warning("ignoring objects directory %s: %s", display_path(d.path), e.strerror)
                continue
            kept.append(d)
        self._dirs = kept

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
        if loc is None:
            loc, locs = self._look_again(raw)
        first_error = None
        vanished = 0
        while loc is not None:
            try:
                return action(raw, loc)
            except FileNotFoundError:
                # git repacked or pruned between the lookup and the read: look again, a few
                # times at most (git may replace the new pack too before this read gets to it).
                vanished += 1
                if vanished > MAX_VANISHED:
                    raise ObjectNotFound(raw.hex()) from None
                loc, locs = self._look_again(raw)
                continue
            except (CorruptObject, OSError, ValueError) as e:
                error = self._error_at(raw, loc, e)
                if isinstance(error, AccessDenied):
                    log.debug("object %s: %s", raw.hex(), error)  # the mode shown says so already
                else:
                    log.warning("object %s: %s", raw.hex(), error)
                first_error = first_error or error
            loc = next(locs, None)
        raise first_error

    def _look_again(self, raw: bytes) -> tuple[Location, Iterator[Location]]:
        """After a miss: (the first location, the others) once a refresh shows the object;
        ObjectNotFound if none does (see _after_refresh)."""
        locs = self._after_refresh(lambda: list(self._locations(raw)))
        if not locs:
            raise ObjectNotFound(raw.hex())
        rest = iter(locs)
        return next(rest), rest

    def _after_refresh(self, look, bucket: int | None = None):
        """What look() finds after a refresh, looked for again while each refresh finds the
        repository changed (MAX_LOOKS times at most); falsy if nothing was found.

        One refresh is not enough. git writes an object's new home before it deletes the old
        one, but a look is not atomic: a refresh lists pack A, git writes pack D and deletes A,
        and the look then finds A gone (skipped as unreadable) and D not yet listed. The
        repository changed under that look, so the next refresh sees a change, and the object
        is looked for again; a look over a repository that its refresh found unchanged is
        final. The first look happens whatever its refresh says: another thread may have
        refreshed since the miss (issue 17's ENOENT for a reachable object under maintenance).
        """
        found = None
        for _ in range(MAX_LOOKS):
            seen = self.generation
            self.refresh(bucket)
            found = look()
            if found or self.generation == seen:
                break
        return found

    def _error_at(self, raw: bytes, loc: Location, e: Exception) -> OdbError:
        """What a failed read at loc means: AccessDenied for EACCES/EPERM, else CorruptObject."""
        if isinstance(e, PermissionError):
            return AccessDenied(e.filename or self._where(loc))
        if isinstance(e, CorruptObject):
            error = e
        else:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            error = CorruptObject(self._where(loc), loc.offset if loc.pack else None, reason)
        if error.oid is None:
            error.oid = raw.hex()
        return error

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

        Objects found in a pack that opens, whose headers read, are answered many at once
        (odb/sizes.py, in C when it is built): what listings ask of every object. Anything
        else (loose objects, damage, a miss, which refreshes) goes through read_size itself,
        so that the answers are read_size's in every case.
        """
        out, errors, _ = self._bulk(ids, None)
        return out, errors

    def stat_many(self, ids: bytes) -> tuple[array, dict[int, Exception], list]:
        """read_sizes with each object's Access beside its size, as stat gives both: (sizes,
        errors by index, Access by index, None where the size is an error)."""
        return self._bulk(ids, self.stat)

    def _bulk(self, ids: bytes, careful_call) -> tuple[array, dict[int, Exception], list]:
        """Sizes (and, with careful_call = stat, Accesses) of many ids: bulk through the packs,
        the rest one by one through read_size or stat, so the answers are theirs in every case."""
        ids = bytes(ids)
        n = self.format.raw_len
        count = len(ids) // n
        out = array("q", [-1]) * -(-len(ids) // n)
        accesses: list = [None] * len(out) if careful_call is not None else []
        careful = self._sizes_in_packs(ids, count, out, accesses)
        careful.extend(range(count, len(out)))  # a short id at the end: read_size says what it is
        errors: dict[int, Exception] = {}
        for k in sorted(careful):
            try:
                if careful_call is None:
                    out[k] = self.read_size(ids[k * n : (k + 1) * n])
                else:
                    out[k], accesses[k] = careful_call(ids[k * n : (k + 1) * n])
            except (OdbError, OSError) as e:  # what read_size raises is the answer, carried whole
                errors[k] = e
        return out, errors, accesses

    def _sizes_in_packs(self, ids: bytes, count: int, out: array, accesses: list) -> list[int]:
        """Fills out with the sizes of the first count ids that packs answer in bulk, looking
        in each objects directory in turn as _find does, and accesses (when it is not empty)
        with their packs' Access; returns the indexes left to read_size."""
        n = self.format.raw_len
        careful: list[int] = []
        pending, block = range(count), ids[: count * n]
        for d in self._dirs:
            if not pending:
                break
            located = d.packs.locate_many(block)
            got = sizes.entry_sizes(located, n)
            of_pack = self._pack_accesses(located, got) if accesses else None
            if of_pack is None and accesses:
                careful.extend(pending)  # a pack's files do not stat: stat says why, one by one
                return careful
            if len(pending) == count and min(got, default=0) >= 0:
                out[:count] = got  # all found and read: the usual case
                if accesses:
                    accesses[:count] = [of_pack[j] for j in located.which]
                return careful
            missed = []
            for j, k in enumerate(pending):
                if got[j] >= 0:
                    out[k] = got[j]
                    if accesses:
                        accesses[k] = of_pack[located.which[j]]
                elif located.which[j] == MISSING and not d.loose.contains(ids[k * n : (k + 1) * n]):
                    missed.append(k)  # the next objects directory may have it
                else:
                    careful.append(k)
            pending = missed
            block = b"".join([ids[k * n : (k + 1) * n] for k in missed])
        careful.extend(pending)
        return careful

    def _pack_accesses(self, located, got: array) -> list | None:
        """The Access of each pack located names (by position), or None when one of them does
        not stat (it vanished): the careful path then reports it."""
        used = [j for j in set(located.which) if j >= 0]
        out: list = [None] * len(located.packs)
        try:
            for j in used:
                out[j] = self._access.for_pack(located.packs[j])
        except OSError:
            return None
        return out

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

    @staticmethod
    def _where(loc: Location) -> str:
        return loc.pack.pack_path if loc.pack else loc.source.loose.path(loc.raw)

    # -- listing ---------------------------------------------------------------

    def bucket_has_objects(self, first_byte: int) -> bool:
        """Whether the bucket holds any object, after a refresh (looked at again as a miss is:
        a bucket that git empties of loose objects by packing them is not reported empty)."""
        return bool(self._after_refresh(lambda: self.bucket_ids(first_byte), first_byte))

    def bucket_ids(self, first_byte: int) -> bytes:
        """The bucket's raw ids, sorted, each once, concatenated: what a listing holds."""
        if not 0 <= first_byte <= 255:
            raise ValueError("a bucket is a byte, 0 to 255")
        n = self.format.raw_len
        packed, loose, dirs = [], [], self._dirs
        sorted_unique = False  # (no directory left: every one was refused)
        for d in dirs:
            block, sorted_unique, more = d.ids_in_bucket(first_byte)
            if block:
                packed.append(block)
            loose += more
        if len(dirs) == 1 and sorted_unique and not loose:
            return block  # usually one multi-pack-index lists them all, sorted and unique already
        ids = [blk[i : i + n] for blk in packed for i in range(0, len(blk), n)] + loose
        # dict.fromkeys drops duplicates in C, and sorting a nearly sorted list is linear.
        return b"".join(sorted(dict.fromkeys(ids)))

    def list_bucket(self, first_byte: int) -> list[str]:
        """The bucket's hex ids, sorted, each once."""
        block = self.bucket_ids(first_byte).hex()
        n = self.format.hex_len
        return [block[i : i + n] for i in range(0, len(block), n)]

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
        found = self._prefix_matches(prefix) or self._after_refresh(lambda: self._prefix_matches(prefix))
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


def _real_or_none(path: str) -> str | None:
    """The real path, or None if it leads into a refused directory."""
    try:
        return resolve(path)
    except SelfReference:
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
