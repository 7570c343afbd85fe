"""Git LFS pointers (git-lfs docs/spec.md) and the objects git-lfs keeps in <common dir>/lfs/objects.

    pointer = parse_pointer(blob_bytes)       # LfsPointer(oid, size) or None
    found = LfsObjects(common_dir).find(pointer)  # LfsObject(path, None) or (None, why not)
    data = read_verified(found.path, pointer, offset, size)

A pointer is a blob of at most MAX_POINTER bytes: "key value" lines in key order, "version
https://git-lfs.github.com/spec/v1" first, then "oid sha256:<64 hex>" and "size <n>". Its
object is <common dir>/lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid> (git-lfs's default; an
lfs.storage setting is not read). An object is used only when its size is the pointer's, and
its bytes are served only once their sha256 is the pointer's oid (hashed once per file
version, before the first byte is given out): a damaged or foreign object is never shown.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from typing import NamedTuple

from .mapped_file import open_stat
from .tuning import HASH_CHUNK

MAX_POINTER = 1024  # the spec: pointer files must be less than 1024 bytes
VERSIONS = (b"https://git-lfs.github.com/spec/v1", b"https://hawser.github.com/spec/v1")
_KEY = re.compile(rb"[a-z0-9.-]+")
_OID = re.compile(rb"sha256:([0-9a-f]{64})")


class LfsPointer(NamedTuple):
    oid: str  # the sha256 of the content, 64 hex digits
    size: int


class LfsObject(NamedTuple):
    path: str | None
    problem: str | None  # why the pointer is shown instead (None: path holds the content)


def parse_pointer(data: bytes) -> LfsPointer | None:
    """The pointer a blob is, or None (git-lfs's DecodePointer, strict as it is)."""
    if len(data) >= MAX_POINTER or not data.startswith(b"version ") or not data.endswith(b"\n"):
        return None
    fields = {}
    keys = []
    for line in data[:-1].split(b"\n"):
        key, space, value = line.partition(b" ")
        if not space or not _KEY.fullmatch(key) or key in fields:
            return None
        fields[key] = value
        keys.append(key)
    if keys[0] != b"version" or fields[b"version"] not in VERSIONS or keys[1:] != sorted(keys[1:]):
        return None
    oid = _OID.fullmatch(fields.get(b"oid", b""))
    size = fields.get(b"size", b"")
    if oid is None or not size.isdigit() or (len(size) > 1 and size.startswith(b"0")):
        return None
    return LfsPointer(oid.group(1).decode(), int(size))


class LfsObjects:
    """The objects of one repository's LFS store; remembers which file versions hashed right."""

    def __init__(self, common_dir: str):
        self.root = os.path.join(os.fspath(common_dir), "lfs", "objects")
        self._verified: dict[tuple, bool] = {}
        self._lock = threading.Lock()

    def path(self, oid: str) -> str:
        return os.path.join(self.root, oid[:2], oid[2:4], oid)

    def find(self, pointer: LfsPointer) -> LfsObject:
        path = self.path(pointer.oid)
        try:
            # Opened as every repository file is: no FIFO, no symlink into the mount itself.
            fd, st = open_stat(path)
            os.close(fd)
        except FileNotFoundError:
            return LfsObject(None, f"object not in the repository: {path}")
        except OSError as e:
            return LfsObject(None, f"object unreadable: {path}: {e.strerror or e}")
        if st.st_size != pointer.size:
            return LfsObject(None, f"object has {st.st_size} bytes, the pointer says {pointer.size}: {path}")
        return LfsObject(path, None)

    def read(self, pointer: LfsPointer, offset: int, size: int) -> bytes:
        """Bytes of the content, once the file's sha256 is the pointer's; OSError (EIO) if not."""
        fd, st = open_stat(self.path(pointer.oid))
        try:
            if st.st_size != pointer.size:
                raise OSError(5, f"LFS object {pointer.oid} has {st.st_size} bytes, the pointer says {pointer.size}")
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, pointer.oid)
            with self._lock:
                known = self._verified.get(key)
            if known is None:
                known = _sha256(fd) == pointer.oid
                with self._lock:
                    self._verified[key] = known
                    if len(self._verified) > 4096:
                        self._verified.pop(next(iter(self._verified)))
            if not known:
                raise OSError(5, f"LFS object {pointer.oid}: its sha256 differs (damaged or replaced)")
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)


def _sha256(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while True:
        chunk = os.pread(fd, HASH_CHUNK, offset)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        offset += len(chunk)
