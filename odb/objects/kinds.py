"""Object kinds: the type codes of pack entries and loose headers, and their names."""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    """A pack entry's type code (bits 6-4 of its first byte); 0 and 5 are invalid.

    An IntEnum, so the codes parsed from pack headers (plain ints) compare with it as they
    are: the hot paths never convert.
    """

    COMMIT = 1
    TREE = 2
    BLOB = 3
    TAG = 4
    OFS_DELTA = 6
    REF_DELTA = 7

    @property
    def is_delta(self) -> bool:
        return self >= Kind.OFS_DELTA


WHOLE = (Kind.COMMIT, Kind.TREE, Kind.BLOB, Kind.TAG)
# The name of each whole object's code, as git prints it.
KINDS: dict[int, str] = {int(k): k.name.lower() for k in WHOLE}
