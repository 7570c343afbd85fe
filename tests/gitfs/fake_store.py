"""An in-memory object store with odb's public API, filled from git, for tests of the FUSE layer."""

from __future__ import annotations

import bisect
import io
import os
import subprocess
import threading
from dataclasses import dataclass

import odb


@dataclass
class FakeInfo:
    kind: str
    size: int
    source: str
    offset: int | None
    delta_base: str | None


class FakeStream:
    """odb.ObjectStream's interface over bytes, in pieces of CHUNK, logging opens, forks and
    the bytes it hands out."""

    CHUNK = 4096

    def __init__(self, kind: str, data: bytes, log: list, offset: int = 0, event: str = "open"):
        self.kind = kind
        self.size = len(data)
        self._data = data
        self.offset = offset
        self._log = log
        log.append(event)

    def read_chunk(self) -> bytes:
        out = self._data[self.offset : self.offset + self.CHUNK]
        self.offset += len(out)
        self._log.append(("inflated", len(out)))
        return out

    def read(self, n: int = -1) -> bytes:
        out = self._data[self.offset :] if n < 0 else self._data[self.offset : self.offset + n]
        self.offset += len(out)
        return out

    def fork(self) -> "FakeStream":
        return FakeStream(self.kind, self._data, self._log, self.offset, "fork")

    def close(self) -> None:
        self._log.append("close")


class FakeStore:
    """objects: hex id -> (kind, bytes). Tests edit it and call refresh like git would."""

    def __init__(self, objects: dict[str, tuple[str, bytes]], fmt=odb.SHA1):
        self.format = fmt
        self.objects = dict(objects)
        self.corrupt: set[str] = set()  # ids whose read raises CorruptObject
        self.denied: set[str] = set()  # ids whose read raises AccessDenied (a file odb may not read)
        self.calls: list[str] = []
        self.stream_log: list[str] = []
        self._ids = sorted(self.objects)
        self._lock = threading.Lock()
        self._dirty = False
        self.generation = 0
        # What the files and the objects directory would show (odb.Access).
        self.access = odb.Access(os.getuid(), os.getgid(), 0o444, 1_500_000_000 * 10**9)
        self.directory_access = odb.Access(os.getuid(), os.getgid(), 0o555, 1_400_000_000 * 10**9)

    @classmethod
    def from_git(cls, git_dir: str) -> "FakeStore":
        listing = subprocess.run(
            ["git", "-C", git_dir, "cat-file", "--batch-all-objects", "--batch"],
            check=True, capture_output=True).stdout
        objects = {}
        pos = 0
        while pos < len(listing):
            eol = listing.index(b"\n", pos)
            hex_id, kind, size = listing[pos:eol].decode().split()
            start = eol + 1
            objects[hex_id] = (kind, listing[start:start + int(size)])
            pos = start + int(size) + 1
        return cls(objects)

    # -- editing, for tests --

    def add(self, hex_id: str, kind: str, data: bytes) -> None:
        with self._lock:
            self.objects[hex_id] = (kind, data)
            self._dirty = True

    def remove(self, hex_id: str) -> None:
        with self._lock:
            del self.objects[hex_id]
            self._dirty = True

    # -- the odb API --

    def _hex(self, oid) -> str:
        return oid.hex() if isinstance(oid, (bytes, bytearray)) else oid

    def _get(self, oid) -> tuple[str, bytes]:
        hex_id = self._hex(oid)
        if hex_id in self.corrupt:
            raise odb.CorruptObject("fake.pack", 12, "flipped bytes", oid=hex_id)
        if hex_id in self.denied:
            raise odb.AccessDenied(f"objects/{hex_id[:2]}/{hex_id[2:]}")
        try:
            return self.objects[hex_id]
        except KeyError:
            # As odb does: a miss refreshes once and retries (git may just have written it).
            if self.refresh():
                return self._get(oid)
            raise odb.ObjectNotFound(hex_id) from None

    def read(self, oid):
        self.calls.append("read")
        return self._get(oid)

    def read_header(self, oid):
        self.calls.append("read_header")
        kind, data = self._get(oid)
        return kind, len(data)

    def read_size(self, oid):
        self.calls.append("read_size")
        return len(self._get(oid)[1])

    def stat(self, oid):
        self.calls.append("stat")
        return len(self._get(oid)[1]), self.access

    def root_access(self):
        return self.directory_access

    def locate(self, oid):
        kind, data = self._get(oid)
        hex_id = self._hex(oid)
        if hex_id[-1] in "01234567":
            return FakeInfo(kind, len(data), "loose", None, None)
        return FakeInfo(kind, len(data), "pack-1234.pack", 12, "ab" * self.format.raw_len)

    def open_stream(self, oid):
        kind, data = self._get(oid)
        return FakeStream(kind, data, self.stream_log)

    def resolve_prefix(self, prefix: str) -> str:
        i = bisect.bisect_left(self._ids, prefix)
        found = []
        while i < len(self._ids) and self._ids[i].startswith(prefix):
            found.append(self._ids[i])
            i += 1
        if not found:
            raise odb.ObjectNotFound(prefix)
        if len(found) > 1:
            raise odb.AmbiguousPrefix(prefix, found)
        return found[0]

    def iter_bucket(self, bucket: int) -> list[str]:
        prefix = "%02x" % bucket
        lo = bisect.bisect_left(self._ids, prefix)
        hi = bisect.bisect_left(self._ids, "%02x" % (bucket + 1)) if bucket < 255 else len(self._ids)
        return self._ids[lo:hi]

    def bucket_ids(self, bucket: int) -> bytes:
        self.calls.append("bucket_ids")
        return b"".join(bytes.fromhex(h) for h in self.iter_bucket(bucket))

    def bucket_has_objects(self, bucket: int) -> bool:
        self.refresh(bucket)  # one refresh: a fake repository changes only when a test says so
        return bool(self.iter_bucket(bucket))

    def nonempty_buckets(self) -> list[int]:
        return sorted({int(h[:2], 16) for h in self._ids})

    def __iter__(self):
        return iter(list(self._ids))

    # Where the repository is (odb/anchor.py): this one never moves.
    objects_dir = "/fake/objects"
    git_dir = None
    gone = None

    def follow_moves(self) -> bool:
        return False

    def refresh(self, bucket: int | None = None) -> bool:
        with self._lock:
            changed, self._dirty = self._dirty, False
            self._ids = sorted(self.objects)
            if changed:
                self.generation += 1
        return changed

    def close(self) -> None:
        pass
