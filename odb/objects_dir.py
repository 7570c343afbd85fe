"""Objects directories: one (ObjectsDir: its packs, its loose objects, its confinement once a
mount point is refused), and what a store asks of all of its own in lookup order (the
repository's, then its alternates): a bucket's ids merged, the buckets that hold any, the ids
a prefix matches, each confined."""

from __future__ import annotations

import logging
import os
import stat
from typing import Iterator

from .objects.delta_chain import Location
from .errors import display_path
from .objects.loose import DIR_FLAGS, LooseObjects
from .mapped_file import Descriptor
from .oid import ObjectFormat, Prefix
from .pack.backend import PackBackend
from .refused_paths import SelfReference, resolve

log = logging.getLogger("odb")

MAX_CANDIDATES = 1000


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


def confined(dirs: list[ObjectsDir]) -> list[ObjectsDir]:
    """dirs, each confined (ObjectsDir.confine) unless it was already; one that resolves into a
    refused directory, or does not open, is left out with a warning."""
    kept = []
    for d in dirs:
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
    return kept


def bucket_ids_in(dirs: list[ObjectsDir], first_byte: int, n: int) -> bytes:
    """The bucket's raw ids (of n bytes) in all of dirs, sorted, each once, concatenated."""
    packed, loose = [], []
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


def nonempty_buckets_in(dirs: list[ObjectsDir]) -> list[int]:
    """The first bytes that at least one object of dirs has, sorted."""
    found: set[int] = set()
    for d in dirs:
        found |= d.nonempty_buckets()
    return sorted(found)


def prefix_matches_in(dirs: list[ObjectsDir], prefix: Prefix) -> set[str]:
    found: set[str] = set()
    for d in dirs:
        found |= d.prefix_matches(prefix)
    return found
