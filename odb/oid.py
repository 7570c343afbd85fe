"""Object ids: the hash formats git knows, and parsing ids once at the edge."""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from typing import NamedTuple

from .errors import ObjectNotFound
from .objects.kinds import KINDS  # noqa: F401 - re-exported: the names of whole-object codes


@dataclass(frozen=True)
class ObjectFormat:
    name: str  # as in extensions.objectFormat
    raw_len: int  # H in the format documents
    midx_hash_version: int  # the hash byte of a multi-pack-index header

    @property
    def hex_len(self) -> int:
        return 2 * self.raw_len

    def hash_object(self, kind: str, data) -> bytes:
        h = hashlib.new(self.name)
        h.update(b"%s %d\0" % (kind.encode(), len(data)))
        h.update(data)
        return h.digest()


SHA1 = ObjectFormat("sha1", 20, 1)
SHA256 = ObjectFormat("sha256", 32, 2)
FORMATS = {f.name: f for f in (SHA1, SHA256)}

def parse_oid(oid, fmt: ObjectFormat) -> bytes:
    """Turns a hex string or raw bytes into raw bytes of the format's length.

    An id that cannot name an object in this repository is simply not found:
    callers browsing a mount type all sorts of names.
    """
    if isinstance(oid, (bytes, bytearray, memoryview)):
        raw = bytes(oid)
        if len(raw) == fmt.raw_len:
            return raw
        shown = raw.hex()
    else:
        if len(oid) == fmt.hex_len:
            try:
                return binascii.unhexlify(oid)
            except (binascii.Error, ValueError):
                pass
        shown = oid
    raise ObjectNotFound(shown)


def is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s)


class Prefix(NamedTuple):
    """An abbreviated id, parsed once: its hex digits and the whole bytes they spell.

    An odd last digit is a half byte that raw cannot hold; `matches` checks it in hex.
    """

    hex: str  # lower-case, at least two digits
    raw: bytes  # the first len(hex) // 2 bytes

    @classmethod
    def from_hex(cls, digits: str) -> Prefix:
        """Digits already checked to be hex (2 or more of them); case does not matter."""
        digits = digits.lower()
        if len(digits) < 2:
            raise ValueError("a prefix needs at least two hex digits")
        return cls(digits, binascii.unhexlify(digits[: len(digits) & ~1]))

    @property
    def first_byte(self) -> int:
        return self.raw[0]

    def matches(self, raw_id: bytes) -> bool:
        if not raw_id.startswith(self.raw):
            return False
        return len(self.hex) % 2 == 0 or raw_id.hex().startswith(self.hex)
