"""Loose objects: objects/xx/yyyy..., each a zlib stream of "<type> <size>\\0" + content."""

from __future__ import annotations

import os
import zlib

from .errors import CorruptObject
from .oid import ObjectFormat

TYPE_CODES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
MAX_HEADER = 64  # "commit " + a 20-digit size + NUL fits with room to spare
MAX_INFLATE_RATIO = 1032  # see pack.py
HEX = frozenset("0123456789abcdef")
READ_CHUNK = 1 << 18


class LooseObjects:
    """The loose objects of one objects directory. Always read live from the directory:
    git writes them at any moment, and listing one bucket is a single listdir."""

    def __init__(self, objects_dir: str, fmt: ObjectFormat):
        self.dir = objects_dir
        self.format = fmt

    def path(self, raw: bytes) -> str:
        h = raw.hex()
        return os.path.join(self.dir, h[:2], h[2:])

    def contains(self, raw: bytes) -> bool:
        return os.path.isfile(self.path(raw))

    def hex_in_bucket(self, first_byte: int) -> list[str]:
        bucket = "%02x" % first_byte
        rest = self.format.hex_len - 2
        try:
            # is_file() answers from the directory entry's type: no stat per object, and a
            # stray directory with an object's name is not listed (contains() agrees).
            with os.scandir(os.path.join(self.dir, bucket)) as entries:
                return [bucket + e.name for e in entries
                        if len(e.name) == rest and HEX.issuperset(e.name) and e.is_file()]
        except OSError:
            return []

    def nonempty_buckets(self) -> set[int]:
        out = set()
        try:
            names = os.listdir(self.dir)
        except OSError:
            return out
        for name in names:
            if len(name) == 2 and HEX.issuperset(name) and self.hex_in_bucket(int(name, 16)):
                out.add(int(name, 16))
        return out

    def bucket_mtime(self, first_byte: int) -> int | None:
        """A cheap fingerprint of which loose objects one bucket holds (its directory's mtime)."""
        try:
            return os.stat(os.path.join(self.dir, "%02x" % first_byte)).st_mtime_ns
        except OSError:
            return None

    def bucket_mtimes(self) -> list:
        return [self.bucket_mtime(b) for b in range(256)]

    # -- reading -------------------------------------------------------------

    def _corrupt(self, path: str, reason: str) -> CorruptObject:
        return CorruptObject(path, None, reason)

    def _start(self, path: str, f) -> tuple[zlib._Decompress, int, int, bytes]:
        """Inflates the header: (decompressor, type code, size, first body bytes)."""
        d = zlib.decompressobj()
        try:
            head = d.decompress(f.read(1024), MAX_HEADER)
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
        if size > os.fstat(f.fileno()).st_size * MAX_INFLATE_RATIO + MAX_HEADER:
            raise self._corrupt(path, f"loose object claims {size} bytes, more than its file can hold")
        return d, code, size, head[nul + 1 :]

    def read_header(self, raw: bytes) -> tuple[int, int] | None:
        path = self.path(raw)
        try:
            with open(path, "rb") as f:
                _, code, size, _ = self._start(path, f)
        except FileNotFoundError:
            return None
        return code, size

    def read(self, raw: bytes) -> tuple[int, bytes] | None:
        path = self.path(raw)
        try:
            with open(path, "rb") as f:
                d, code, size, body = self._start(path, f)
                if len(body) > size:
                    raise self._corrupt(path, "loose object is longer than its header says")
                try:
                    rest = d.unconsumed_tail + f.read()
                    body += d.decompress(rest, size + 1 - len(body))
                except zlib.error as e:
                    raise self._corrupt(path, f"bad compressed data: {e}") from None
        except FileNotFoundError:
            return None
        if len(body) != size or not d.eof:
            raise self._corrupt(path, f"loose object inflates to {len(body)}+ bytes, header says {size}")
        return code, body

    def iter_read(self, raw: bytes):
        """(type code, size, chunk iterator) for streaming a big loose object."""
        path = self.path(raw)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return None
        d, code, size, body = self._start(path, f)
        return code, size, self._chunks(path, f, d, size, body)

    def _chunks(self, path, f, d, size, body):
        have = len(body)
        with f:
            if body:
                yield body
            try:
                while not d.eof and have <= size:
                    data = d.unconsumed_tail or f.read(READ_CHUNK)
                    if not data:
                        break
                    chunk = d.decompress(data, READ_CHUNK * 4)
                    have += len(chunk)
                    if have <= size:
                        yield chunk
            except zlib.error as e:
                raise self._corrupt(path, f"bad compressed data: {e}") from None
        if have != size or not d.eof:
            raise self._corrupt(path, f"loose object inflates to the wrong size (header says {size})")
