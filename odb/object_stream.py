"""ObjectStream: an object's bytes read front to back, for Store.open_stream."""

from __future__ import annotations

from .objects.inflation import CHUNK, Inflation


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
