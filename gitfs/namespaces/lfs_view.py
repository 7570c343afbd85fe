"""-o lfs: files under .tree that are Git LFS pointers show their content, when the repository has it.

A blob of a tree listing that parses as a pointer (odb.lfs) becomes an LfsFile when its object
is in <common dir>/lfs/objects with the pointer's size: the file shows the content's size, and
reads serve the object's bytes once its sha256 has been checked (EIO if it differs, never the
wrong bytes). Otherwise the file stays the pointer, and user.git.lfs says why. Either way
user.git.lfs is set on a pointer; the bucket view always shows raw objects. Runs in worker threads.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import odb
from odb.lfs import MAX_POINTER, LfsObjects, LfsPointer, parse_pointer
from odb.lru import LRU
from odb.objects.tree import BLOB, EXECUTABLE

from gitfs.namespaces.tree_view import BlobFile

XATTR = b"user.git.lfs"
PROBLEMS_KEPT = 1 << 16
_REGULAR = (BLOB, EXECUTABLE)


class LfsFile(NamedTuple):
    blob: bytes  # the pointer
    executable: bool
    mtime_ns: int | None
    pointer: LfsPointer


class LfsView:
    def __init__(self, store, common_dir: str):
        self.store = store
        self.objects = LfsObjects(common_dir)
        self._problems: LRU[bytes, bytes] = LRU(max_items=PROBLEMS_KEPT)  # pointer blob -> why
        self._pointers: LRU[bytes, LfsPointer] = LRU(max_items=PROBLEMS_KEPT)  # blob -> its pointer, object here
        self._lock = threading.Lock()

    def files(self, tree: odb.Tree, mtime_ns: int | None) -> dict[int, LfsFile]:
        """Thread: the entries of a tree's listing that are pointers whose object is here, as
        LfsFile by position. Only blobs smaller than a pointer can be are read (their sizes
        come from object headers)."""
        modes = tree.modes()
        files = [k for k, mode in enumerate(modes) if mode in _REGULAR]
        if not files:
            return {}
        sizes, _errors = self.store.read_sizes(b"".join(tree.oid_at(k) for k in files))
        out = {}
        for k, size in zip(files, sizes):
            if 0 < size < MAX_POINTER:
                found = self._file(BlobFile(tree.oid_at(k), modes[k] == EXECUTABLE, mtime_ns))
                if type(found) is LfsFile:
                    out[k] = found
        return out

    def file(self, node: BlobFile):
        """node, or the LfsFile it shows: for an entry whose listing is gone (the loop: reads
        the blob if it is small enough, as its listing did; a pointer found is remembered, for
        the reads of its file that follow)."""
        with self._lock:
            pointer = self._pointers.get(node.blob)
        if pointer is not None:
            return LfsFile(node.blob, node.executable, node.mtime_ns, pointer)
        try:
            size, _access = self.store.stat(node.blob)
        except (odb.OdbError, OSError):
            return node
        return self._file(node) if 0 < size < MAX_POINTER else node

    def _file(self, node: BlobFile):
        """node (a blob small enough to be a pointer), or the LfsFile it shows."""
        try:
            kind, data = self.store.read(node.blob)
        except (odb.OdbError, OSError):  # shown as it is; a read reports the damage
            return node
        pointer = parse_pointer(bytes(data))
        if pointer is None:
            return node
        found = self.objects.find(pointer)
        if found.path is not None:
            with self._lock:
                self._pointers.put(node.blob, pointer)
            return LfsFile(node.blob, node.executable, node.mtime_ns, pointer)
        with self._lock:
            self._problems.put(node.blob, f"pointer shown: {found.problem}".encode())
        return node

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
