"""Loose objects: objects/xx/yyyy..., each a zlib stream of "<type> <size>\\0" + content."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import stat
import threading
import zlib

from ..errors import CorruptObject, display_path
from .inflation import Inflation
from ..lru import LRU
from ..mapped_file import OPEN_FLAGS, Descriptor, check_regular, read_all
from ..oid import ObjectFormat
from ..refused_paths import SelfReference, open_nofollow, resolve
from ..tuning import HEAD_READ, MAX_BUCKET_DESCRIPTORS

TYPE_CODES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
MAX_HEADER = 64  # "commit " + a 20-digit size + NUL fits with room to spare
MAX_INFLATE_RATIO = 1032  # see pack/entry.py
HEX = frozenset("0123456789abcdef")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW

log = logging.getLogger("odb")


def bucket_descriptor_limit() -> int:
    """MAX_BUCKET_DESCRIPTORS, or fewer when the process may open few files (see
    pack.backend.open_pack_limit, which takes an eighth of them)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_BUCKET_DESCRIPTORS
    return max(1, min(MAX_BUCKET_DESCRIPTORS, soft // 32))


class LooseObjects:
    """The loose objects of one objects directory. Always read live from the directory:
    git writes them at any moment, and listing one bucket is a single listdir.

    Files are opened non-blocking and must be regular (a FIFO in place of an object is an
    error for that object, never a hang). Once confined (a mount of the repository exists, see
    refused_paths), paths are taken relative to the objects directory's descriptor, and neither
    a bucket directory nor an object file is followed through a symlink before resolve() has
    said where it leads.
    """

    def __init__(self, objects_dir: str, fmt: ObjectFormat):
        self.dir = objects_dir
        self.format = fmt
        self._prefix = os.path.join(objects_dir, "")
        self._root: Descriptor | None = None
        self._refused_buckets: set[str] = set()  # warned about once each
        self._lock = threading.Lock()
        # confined: kept bucket directories (descriptor, inode), first opened first closed
        self._buckets: LRU[str, tuple[Descriptor, int]] = LRU(max_items=bucket_descriptor_limit())

    def path(self, raw: bytes) -> str:
        h = raw.hex()
        return self._prefix + h[:2] + "/" + h[2:]

    def confine(self, root: Descriptor) -> None:
        """Takes every path from now on relative to root: this objects directory, opened once
        its path was checked to lead into no refused directory."""
        self._root = root

    # -- confined access ------------------------------------------------------

    def _open_bucket(self, root: Descriptor, bucket: str) -> int:
        """A descriptor of one bucket directory; a symlink is followed only after resolve()."""
        try:
            return os.open(bucket, DIR_FLAGS, dir_fd=root.fd)
        except NotADirectoryError:  # a symlink (or a file) where the bucket should be
            pass
        try:
            return os.open(resolve(self._prefix + bucket), DIR_FLAGS)
        except SelfReference:
            if bucket not in self._refused_buckets:
                self._refused_buckets.add(bucket)
                log.warning("ignoring %s: it resolves into the mount itself", display_path(self._prefix + bucket))
            raise

    def _bucket(self, root: Descriptor, bucket: str) -> Descriptor:
        """The bucket directory's descriptor, kept for the next objects of the bucket: a lookup
        and a read then cost one call each, as unconfined. A kept descriptor never leads into
        a refused directory, even if the bucket is replaced meanwhile (it keeps the directory it
        opened); refresh() lets go of those whose directory was replaced."""
        found = self._buckets.peek(bucket)  # unlocked: peek() only reads
        if found is not None:
            return found[0]
        desc = Descriptor(self._open_bucket(root, bucket))
        with self._lock:
            self._buckets.put(bucket, (desc, os.fstat(desc.fd).st_ino))
        return desc

    def _open_confined(self, root: Descriptor, raw: bytes, path: str) -> tuple[int, bool]:
        """(descriptor, whether the object's own name is a symlink)."""
        h = raw.hex()
        bucket = self._bucket(root, h[:2])
        try:
            return os.open(h[2:], OPEN_FLAGS | os.O_NOFOLLOW, dir_fd=bucket.fd), False
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
        return os.open(resolve(path), OPEN_FLAGS | os.O_NOFOLLOW), True

    def _linked_object(self, path: str) -> bool:
        """Whether a symlink found where an object should be counts as one: it does if it leads
        to a regular file, or into a refused directory (reading it then says so)."""
        try:
            return stat.S_ISREG(os.stat(resolve(path)).st_mode)
        except SelfReference:
            return True
        except OSError:
            return False

    # -- finding and listing --------------------------------------------------

    def contains(self, raw: bytes) -> bool:
        root = self._root
        if root is None:
            try:
                return stat.S_ISREG(os.stat(self.path(raw)).st_mode)
            except (OSError, ValueError):
                return False
        h = raw.hex()
        try:
            st = os.stat(h[2:], dir_fd=self._bucket(root, h[:2]).fd, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode) and self._linked_object(self.path(raw)))

    def hex_in_bucket(self, first_byte: int) -> list[str]:
        bucket = "%02x" % first_byte
        rest = self.format.hex_len - 2
        root = self._root
        try:
            if root is None:
                # is_file() answers from the directory entry's type: no stat per object, and a
                # stray directory with an object's name is not listed (contains() agrees).
                with os.scandir(self._prefix + bucket) as entries:
                    return [bucket + e.name for e in entries
                            if len(e.name) == rest and HEX.issuperset(e.name) and e.is_file()]
            fd = self._open_bucket(root, bucket)
            try:
                with os.scandir(fd) as entries:
                    names = [(e.name, e.is_symlink()) for e in entries
                             if len(e.name) == rest and HEX.issuperset(e.name)
                             and (e.is_file(follow_symlinks=False) or e.is_symlink())]
            finally:
                os.close(fd)
        except OSError:
            return []
        prefix = self._prefix + bucket + "/"
        return [bucket + name for name, linked in names if not linked or self._linked_object(prefix + name)]

    def nonempty_buckets(self) -> set[int]:
        out = set()
        root = self._root
        try:
            if root is None:
                names = os.listdir(self.dir)
            else:
                # A descriptor of its own: listing through root's would share its offset.
                fd = os.open(".", DIR_FLAGS, dir_fd=root.fd)
                try:
                    names = os.listdir(fd)
                finally:
                    os.close(fd)
        except OSError:
            return out
        for name in names:
            if len(name) == 2 and HEX.issuperset(name) and self.hex_in_bucket(int(name, 16)):
                out.add(int(name, 16))
        return out

    def bucket_mtime(self, first_byte: int) -> int | None:
        """A cheap fingerprint of which loose objects one bucket holds (its directory's mtime)."""
        bucket = "%02x" % first_byte
        root = self._root
        try:
            if root is None:
                return os.stat(self._prefix + bucket).st_mtime_ns
            st = os.stat(bucket, dir_fd=root.fd, follow_symlinks=False)
            kept = self._buckets.peek(bucket)
            if kept is not None and (kept[1] != st.st_ino or not stat.S_ISDIR(st.st_mode)):
                self._buckets.pop(bucket, None)  # replaced (git prunes empty buckets, then remakes them)
            if stat.S_ISLNK(st.st_mode):
                st = os.stat(resolve(self._prefix + bucket))
            return st.st_mtime_ns
        except OSError:  # SelfReference included: that bucket is never looked into
            self._buckets.pop(bucket, None)
            return None

    def bucket_mtimes(self) -> list:
        return [self.bucket_mtime(b) for b in range(256)]

    # -- reading -------------------------------------------------------------

    def _corrupt(self, path: str, reason: str) -> CorruptObject:
        return CorruptObject(path, None, reason)

    def _open(self, raw: bytes, path: str) -> tuple[int, os.stat_result, bool] | None:
        """The object's file, open and fstat'ed, and whether its path is a symlink; None if
        there is no file. O_NOFOLLOW first: a symlink costs a second open, and is told apart."""
        root = self._root
        try:
            if root is not None:
                fd, linked = self._open_confined(root, raw, path)
            else:
                try:
                    fd, linked = os.open(path, OPEN_FLAGS | os.O_NOFOLLOW), False
                except OSError as e:
                    if e.errno != errno.ELOOP:
                        raise
                    fd, linked = open_nofollow(path, OPEN_FLAGS), True
        except (FileNotFoundError, NotADirectoryError):
            return None
        return fd, check_regular(fd, path), linked

    def _start(self, path: str, fd: int, st: os.stat_result) -> tuple[zlib._Decompress, int, int, bytes]:
        """Inflates the header: (decompressor, type code, size, first body bytes)."""
        d = zlib.decompressobj()
        try:
            head = d.decompress(os.read(fd, HEAD_READ), MAX_HEADER)
            nul = head.find(b"\0")
            if nul < 0:
                raise self._corrupt(path, "loose object header is missing its NUL")
            kind, _, size_text = head[:nul].partition(b" ")
            code = TYPE_CODES.get(kind)
            if code is None or not size_text.isdigit() or (size_text[0] == 48 and len(size_text) > 1):
                raise self._corrupt(path, f"bad loose object header {head[:nul][:40]!r}")
        except zlib.error as e:
            raise self._corrupt(path, f"bad compressed data: {e}") from None
        size = int(size_text)
        if size > st.st_size * MAX_INFLATE_RATIO + MAX_HEADER:
            raise self._corrupt(path, f"loose object claims {size} bytes, more than its file can hold")
        return d, code, size, head[nul + 1 :]

    @contextlib.contextmanager
    def _begun(self, raw: bytes):
        """The object's file open and its header inflated, as (path, fd, stat, whether its name
        is a symlink, _start's answer); None when there is no file. Closed on the way out."""
        path = self.path(raw)
        opened = self._open(raw, path)
        if opened is None:
            yield None
            return
        fd, st, linked = opened
        try:
            yield path, fd, st, linked, self._start(path, fd, st)
        finally:
            os.close(fd)

    def header_and_stat(self, raw: bytes) -> tuple[int, int, os.stat_result, bool] | None:
        """(type code, size, the file's stat, whether its name is a symlink), from one open:
        the header, and what tells who may read it."""
        with self._begun(raw) as begun:
            if begun is None:
                return None
            _, _, st, linked, (_, code, size, _) = begun
            return code, size, st, linked

    def read_header(self, raw: bytes) -> tuple[int, int] | None:
        found = self.header_and_stat(raw)
        return None if found is None else found[:2]

    def read(self, raw: bytes) -> tuple[int, bytes] | None:
        with self._begun(raw) as begun:
            if begun is None:
                return None
            path, fd, st, _, (d, code, size, body) = begun
            if len(body) > size:
                raise self._corrupt(path, "loose object is longer than its header says")
            try:
                rest = d.unconsumed_tail + read_all(fd, st.st_size)
                body += d.decompress(rest, size + 1 - len(body))
            except zlib.error as e:
                raise self._corrupt(path, f"bad compressed data: {e}") from None
        if len(body) != size or not d.eof:
            raise self._corrupt(path, f"loose object inflates to {len(body)}+ bytes, header says {size}")
        return code, body

    def iter_read(self, raw: bytes):
        """(type code, size, Inflation) for streaming a big loose object."""
        path = self.path(raw)
        opened = self._open(raw, path)
        if opened is None:
            return None
        fd, st, _ = opened
        # The inflation and its copies read with pread through this one file object, which
        # closes the descriptor when the last of them is dropped.
        f = os.fdopen(fd, "rb")
        try:
            d, code, size, body = self._start(path, fd, st)
        except BaseException:
            f.close()
            raise

        def read_at(pos: int, n: int) -> bytes:
            return os.pread(f.fileno(), n, pos)

        inflation = Inflation(read_at, min(HEAD_READ, st.st_size), st.st_size, size,
                              lambda reason: self._corrupt(path, "loose object " + reason), d=d, first=body)
        return code, size, inflation
