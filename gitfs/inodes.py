"""Inode numbers: derived from object ids, counted the way the kernel counts lookups."""

from __future__ import annotations

ROOT_INODE = 1
# Inodes below this bound are reserved: the root, the 256 buckets, and spares.
# An object whose id would land here is treated like a collision.
FIRST_OBJECT_INODE = 1 << 16


def bucket_inode(bucket: int) -> int:
    return 2 + bucket


def bucket_of_inode(inode: int) -> int | None:
    """The bucket number of a bucket inode, or None for any other inode."""
    bucket = inode - 2
    return bucket if 0 <= bucket < 256 else None


def natural_inode(oid: bytes) -> int:
    """The top 63 bits of the id: stable across mounts, needs no table to compute."""
    return int.from_bytes(oid[:8], "big") >> 1


class InodeTable:
    """Maps the inodes the kernel currently knows to object ids.

    Only inodes the kernel holds a lookup count on are kept, so the table is
    bounded by the kernel's inode cache rather than by the repository. Most
    entries have a count of one (one readdirplus or one lookup), so counts
    above one live in a separate, usually tiny, dict.
    """

    def __init__(self):
        self._oids: dict[int, bytes] = {}
        self._extra_counts: dict[int, int] = {}
        # Ids whose natural inode is taken by another id. Never shrinks: it
        # holds the rare collisions only, and keeps their inodes stable for
        # the life of the mount.
        self._moved: dict[bytes, int] = {}
        self._next_spare = FIRST_OBJECT_INODE - 1

    def __len__(self) -> int:
        return len(self._oids)

    def inode_for(self, oid: bytes) -> int:
        """The inode that names oid; does not count a lookup."""
        inode = self._moved.get(oid)
        if inode is not None:
            return inode
        inode = natural_inode(oid)
        if inode >= FIRST_OBJECT_INODE:
            held = self._oids.get(inode)
            if held is None or held == oid:
                return inode
        return self._move(oid)

    def _move(self, oid: bytes) -> int:
        # Two ids share their top 63 bits (or an id falls in the reserved
        # range): hand out a spare inode from the top of the reserved range.
        while self._next_spare in self._oids:
            self._next_spare -= 1
        if self._next_spare <= bucket_inode(255):
            raise OverflowError("no spare inode left for colliding object ids")
        inode = self._next_spare
        self._next_spare -= 1
        self._moved[oid] = inode
        return inode

    def remember(self, inode: int, oid: bytes) -> None:
        """Counts one kernel lookup of inode, which inode_for gave for oid."""
        if inode in self._oids:
            self._extra_counts[inode] = self._extra_counts.get(inode, 1) + 1
        else:
            self._oids[inode] = oid

    def oid_of(self, inode: int) -> bytes | None:
        return self._oids.get(inode)

    def forget(self, inode: int, count: int) -> None:
        if inode not in self._oids:
            return
        left = self._extra_counts.pop(inode, 1) - count
        if left > 1:
            self._extra_counts[inode] = left
        elif left <= 0:
            del self._oids[inode]
