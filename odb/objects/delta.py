"""Git delta data: the size header and applying copy/insert instructions to a base."""

from __future__ import annotations

from ..tuning import DELTA_WINDOW as WINDOW
from .. import accelerators

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


def read_sizes(delta) -> tuple[int, int, int]:
    """(base size, result size, position of the first instruction); a short prefix is enough."""
    # Two copies of one varint loop, unrolled by hand: this runs once per delta and once per
    # read_header of a delta, where a helper call per varint was half the cost.
    limit = 7 * MAX_VARINT_BYTES
    try:
        c = delta[0]
        base_size = c & 0x7F
        i = 1
        shift = 7
        while c & 0x80:
            if shift == limit:
                raise DeltaError(f"delta base size is longer than {MAX_VARINT_BYTES} bytes")
            c = delta[i]
            i += 1
            base_size |= (c & 0x7F) << shift
            shift += 7
    except IndexError:
        raise DeltaError("delta truncated in its base size") from None
    try:
        c = delta[i]
        i += 1
        result_size = c & 0x7F
        shift = 7
        while c & 0x80:
            if shift == limit:
                raise DeltaError(f"delta result size is longer than {MAX_VARINT_BYTES} bytes")
            c = delta[i]
            i += 1
            result_size |= (c & 0x7F) << shift
            shift += 7
    except IndexError:
        raise DeltaError("delta truncated in its result size") from None
    return base_size, result_size, i


def apply_delta_python(base, delta) -> bytes:
    """Rebuild the target object from its base and delta, checking every instruction."""
    d = delta if type(delta) is bytes else bytes(delta)
    b = memoryview(base)
    if b.format != "B" or b.ndim != 1:
        b = b.cast("B")
    parts = []
    try:
        return _apply(b, d, parts)
    finally:
        # A raised DeltaError keeps this frame alive through its traceback; without this, the
        # view and its slices would pin the caller's buffer, and an mmap under it could not close.
        parts.clear()
        b.release()


def _apply(b: memoryview, d: bytes, parts: list) -> bytes:
    """The instruction loop of apply_delta_python; `parts` is the caller's, to be cleared."""
    base_size, result_size, i = read_sizes(d)
    blen = len(b)
    if base_size != blen:
        raise DeltaError(f"delta expects a base of {base_size} bytes, the base has {blen}")
    n = len(d)
    # The result is gathered as slices (views of the base, bytes of the delta) and joined once:
    # a single allocation of the exact size and a single copy. "room" is what the declared size
    # still allows; checking it at each copy stops a delta that would grow past its claim.
    append = parts.append
    chunks = []
    room = result_size
    try:
        while True:
            # A window of at most WINDOW delta bytes makes at most that many slice objects,
            # so a huge delta of tiny instructions cannot multiply its size in Python objects.
            stop = min(n, i + WINDOW)
            while i < stop:
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
                            f"delta copies {size} bytes at base offset {off}, "
                            f"past the base end ({blen})"
                        )
                    room -= size
                    if room < 0:
                        raise DeltaError(f"delta writes past its result size {result_size}")
                    append(b[off:end])
                elif c:
                    append(d[i : i + c])
                    i += c
                    room -= c
                else:
                    raise DeltaError(f"delta opcode 0x00 at delta offset {i - 1}")
            if i >= n:
                break
            chunks.append(b"".join(parts))
            parts.clear()
    except IndexError:
        raise DeltaError("delta truncated inside a copy instruction") from None
    if i > n:
        raise DeltaError("delta truncated inside an insert instruction")
    if room:
        if room < 0:
            raise DeltaError(f"delta writes past its result size {result_size}")
        raise DeltaError(f"delta produced {result_size - room} bytes but declares {result_size}")
    if chunks:
        parts = chunks + parts
    return b"".join(parts)


def _load_c(compiled):
    if compiled is None:
        return None

    c_apply = compiled.apply_delta

    def apply_delta_c(base, delta) -> bytes:
        """The compiled apply_delta, with its ValueError turned into DeltaError."""
        try:
            return c_apply(base, delta)
        except ValueError as e:
            raise DeltaError(str(e)) from None

    return apply_delta_c


_accelerator = accelerators.load("_delta")
# None when odb/_delta.c was not compiled (pip install without a compiler).
apply_delta_c = _load_c(_accelerator.compiled)

if _accelerator.used is not None:
    apply_delta = apply_delta_c
    IMPLEMENTATION = "c"
else:
    apply_delta = apply_delta_python
    IMPLEMENTATION = "python"
