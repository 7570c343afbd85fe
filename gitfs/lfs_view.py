"""-o lfs: files under .tree that are Git LFS pointers show their content, when the repository has it.

A blob of a tree listing that parses as a pointer (odb.lfs) becomes an LfsFile when its object
is in <common dir>/lfs/objects with the pointer's size: the file shows the content's size, and
reads serve the object's bytes once its sha256 has been checked (EIO if it differs, never the
wrong bytes). Otherwise the file stays the pointer, and user.git.lfs says why. Either way
user.git.lfs is set on a pointer; the bucket view always shows raw objects. Runs in worker threads.
"""

from __future__ import annotations

import collections
import threading
from typing import NamedTuple

import odb
from odb.lfs import MAX_POINTER, LfsObjects, LfsPointer, parse_pointer

from .tree_view import BlobFile

XATTR = b"user.git.lfs"
PROBLEMS_KEPT = 1 << 16


class LfsFile(NamedTuple):
    blob: bytes  # the pointer
    executable: bool
    mtime_ns: int | None
    pointer: LfsPointer


class LfsView:
    def __init__(self, store, common_dir: str):
        self.store = store
        self.objects = LfsObjects(common_dir)
        self._problems: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()  # pointer blob -> why
        self._lock = threading.Lock()

    def mark(self, entries: list[tuple[bytes, object]]) -> list[tuple[bytes, object]]:
        """entries with each pointer whose object is here turned into an LfsFile. Only blobs
        smaller than a pointer can be are read (their sizes come from object headers)."""
        files = [k for k, (_, node) in enumerate(entries) if type(node) is BlobFile]
        if not files:
            return entries
        sizes, _errors = self.store.read_sizes(b"".join(entries[k][1].blob for k in files))
        out = list(entries)
        for k, size in zip(files, sizes):
            if not 0 < size < MAX_POINTER:
                continue
            name, node = entries[k]
            try:
                kind, data = self.store.read(node.blob)
            except (odb.OdbError, OSError):  # shown as it is; a read reports the damage
                continue
            pointer = parse_pointer(bytes(data))
            if pointer is None:
                continue
            found = self.objects.find(pointer)
            if found.path is not None:
                out[k] = (name, LfsFile(node.blob, node.executable, node.mtime_ns, pointer))
            else:
                with self._lock:
                    self._problems[node.blob] = f"pointer shown: {found.problem}".encode()
                    while len(self._problems) > PROBLEMS_KEPT:
                        self._problems.popitem(last=False)
        return out

    def xattrs(self, node) -> dict[bytes, bytes]:
        if type(node) is LfsFile:
            return {XATTR: f"content of sha256:{node.pointer.oid} ({node.pointer.size} bytes), "
                           f"from {self.objects.path(node.pointer.oid)}".encode()}
        if type(node) is BlobFile:
            with self._lock:
                why = self._problems.get(node.blob)
            return {XATTR: why} if why is not None else {}
        return {}

    def read(self, node: LfsFile, offset: int, size: int) -> bytes:
        return self.objects.read(node.pointer, offset, size)
