"""Git delta data: the size header and applying copy/insert instructions to a base."""

from __future__ import annotations

import os

__all__ = [
    "DeltaError",
    "IMPLEMENTATION",
    "apply_delta",
    "apply_delta_c",
    "apply_delta_python",
    "read_sizes",
]

# A size varint carries 7 bits a byte; 9 bytes already reach 2**63, beyond any real object.
# git itself reads until the continuation bit clears; a longer varint is garbage or hostile.
MAX_VARINT_BYTES = 9


class DeltaError(ValueError):
    """Delta data that contradicts its format or its base; the caller adds path and offset."""


def _read_varint(delta, pos: int, n: int, what: str) -> tuple[int, int]:
    value = shift = 0
    while pos < n:
        byte = delta[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift == 7 * MAX_VARINT_BYTES:
            raise DeltaError(f"delta {what} size is longer than {MAX_VARINT_BYTES} bytes")
    raise DeltaError(f"delta truncated in its {what} size")


def read_sizes(delta) -> tuple[int, int, int]:
    """(base size, result size, position of the first instruction); a short prefix is enough."""
    n = len(delta)
    base_size, pos = _read_varint(delta, 0, n, "base")
    result_size, pos = _read_varint(delta, pos, n, "result")
    return base_size, result_size, pos


def apply_delta_python(base, delta) -> bytes:
    """Rebuild the target object from its base and delta, checking every instruction."""
    d = delta if type(delta) is bytes else bytes(delta)
    b = memoryview(base)
    if b.format != "B" or b.ndim != 1:
        b = b.cast("B")
    base_size, result_size, i = read_sizes(d)
    blen = len(b)
    if base_size != blen:
        raise DeltaError(f"delta expects a base of {base_size} bytes, the base has {blen}")
    n = len(d)
    out = bytearray()
    # The loop is the hot path of every delta read: one pass, no per-byte calls, bounds checks
    # only where an unchecked value could over-read or grow memory. Inserts are bounded by the
    # delta's own length, so the result-size check for them waits until the end; copies can
    # grow the output by 16 MiB each, so they are checked as they go.
    try:
        while i < n:
            c = d[i]
            i += 1
            if c & 0x80:
                off = 0
                if c & 0x01:
                    off = d[i]
                    i += 1
                if c & 0x02:
                    off |= d[i] << 8
                    i += 1
                if c & 0x04:
                    off |= d[i] << 16
                    i += 1
                if c & 0x08:
                    off |= d[i] << 24
                    i += 1
                size = 0
                if c & 0x10:
                    size = d[i]
                    i += 1
                if c & 0x20:
                    size |= d[i] << 8
                    i += 1
                if c & 0x40:
                    size |= d[i] << 16
                    i += 1
                if not size:
                    size = 0x10000
                end = off + size
                if end > blen:
                    raise DeltaError(
                        f"delta copies {size} bytes at base offset {off}, past the base end ({blen})"
                    )
                out += b[off:end]
                if len(out) > result_size:
                    raise DeltaError(f"delta writes past its result size {result_size}")
            elif c:
                out += d[i : i + c]
                i += c
            else:
                raise DeltaError(f"delta opcode 0x00 at delta offset {i - 1}")
    except IndexError:
        raise DeltaError("delta truncated inside a copy instruction") from None
    if i > n:
        raise DeltaError("delta truncated inside an insert instruction")
    if len(out) != result_size:
        if len(out) > result_size:
            raise DeltaError(f"delta writes past its result size {result_size}")
        raise DeltaError(f"delta produced {len(out)} bytes but declares {result_size}")
    return bytes(out)


def _load_c():
    try:
        from . import _delta
    except ImportError:
        return None

    c_apply = _delta.apply_delta

    def apply_delta_c(base, delta) -> bytes:
        """The compiled apply_delta, with its ValueError turned into DeltaError."""
        try:
            return c_apply(base, delta)
        except ValueError as e:
            raise DeltaError(str(e)) from None

    return apply_delta_c


# None when odb/_delta.c was not compiled (pip install without a compiler).
apply_delta_c = _load_c()

if apply_delta_c is not None and os.environ.get("GITFS_PURE_PYTHON") != "1":
    apply_delta = apply_delta_c
    IMPLEMENTATION = "c"
else:
    apply_delta = apply_delta_python
    IMPLEMENTATION = "python"
