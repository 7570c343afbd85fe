"""One zlib stream inflated piece by piece, that can be copied at any point to resume from there.

Big objects are streamed rather than held. A reader that goes back in such an object would have
to inflate it again from byte 0; a copy taken on the way (zlib keeps its whole state, the 32 KiB
window included, in the decompressor, and `Decompress.copy()` duplicates it) restarts from that
point instead. Copies share the input (a pack mapping, or one open loose file) and nothing else.
"""

from __future__ import annotations

import zlib
from typing import Callable

from ..tuning import INFLATE_CHUNK as CHUNK, INPUT_STEP


class Inflation:
    """Inflates the zlib stream found by `read_at(pos, n)` between pos and end, which must give
    exactly `size` bytes: a stream that ends early, runs long or does not end is corrupt.

    Not safe for two threads at once; copy() it instead. `offset` is the object offset of the
    next byte next_chunk() returns.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], pos: int, end: int, size: int,
                 corrupt: Callable[[str], Exception], *, d=None, first: bytes = b"",
                 on_input: Callable[[int], None] | None = None):
        self._read_at = read_at
        self._pos = pos
        self._end = end
        self.size = size
        self._corrupt = corrupt
        self._d = d if d is not None else zlib.decompressobj()
        self._pending = first  # bytes already inflated, not yet handed out (a loose header's tail)
        self._have = len(first)  # bytes inflated so far
        self._on_input = on_input
        if self._have > size:
            raise corrupt(f"inflates to more than {size} bytes")

    @property
    def offset(self) -> int:
        return self._have - len(self._pending)

    def next_chunk(self) -> bytes:
        """The next piece of at most CHUNK bytes; b"" once all `size` bytes were handed out."""
        d = self._d
        if d is None:
            raise ValueError("read of a closed stream")
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        try:
            while not d.eof:
                if d.unconsumed_tail:
                    out = d.decompress(d.unconsumed_tail, CHUNK)
                elif self._pos < self._end:
                    data = self._read_at(self._pos, min(INPUT_STEP, self._end - self._pos))
                    if not data:
                        break
                    self._pos += len(data)
                    if self._on_input is not None:
                        self._on_input(self._pos)
                    out = d.decompress(data, CHUNK)
                else:
                    break
                if out:
                    self._have += len(out)
                    if self._have > self.size:
                        raise self._corrupt(f"inflates to more than {self.size} bytes")
                    return out
        except zlib.error as e:
            raise self._corrupt(f"bad compressed data: {e}") from None
        if self._have != self.size or not d.eof:
            raise self._corrupt(f"inflates to {self._have} bytes, not {self.size}")
        return b""

    def __iter__(self):
        while chunk := self.next_chunk():
            yield chunk

    def copy(self) -> Inflation:
        """An independent inflation at the same point (about 40 KiB of zlib state)."""
        twin = object.__new__(Inflation)
        twin.__dict__.update(self.__dict__)
        if self._d is None:
            raise ValueError("copy of a closed stream")
        twin._d = self._d.copy()
        return twin

    def close(self) -> None:
        """Lets go of the decompressor; the input is let go when the last copy is."""
        self._d = None
        self._pending = b""
