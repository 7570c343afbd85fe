"""Inode numbers: object inodes derived from ids (no table), others counted the way the kernel counts.

An object's inode is the top 63 bits of its id, so numbering the objects of a repository needs no
table at all, and the inode leads back to the id: its top byte names the bucket, and a search of
the bucket's sorted ids for those 63 bits finds the id. Ids that share their top 63 bits (or whose
bits fall in the reserved range) get "moved" inodes from a small table that never shrinks
(collisions are astronomically rare, and their inodes must stay stable for the life of the mount).

Everything else the mount shows that is not a fixed directory (the .refs and .tree namespaces)
gets a dynamic inode with bit 63 set, held while the kernel holds a lookup count on it.
"""

from __future__ import annotations

ROOT_INODE = 1
FIRST_BUCKET_INODE = 2  # 256 buckets, then the same 256 spelt in upper case
FIRST_ALIAS_INODE = FIRST_BUCKET_INODE + 256
# Fixed inodes of the namespaces beside the buckets (.refs, .tree); see gitfs/view.py.
FIRST_NAMESPACE_INODE = FIRST_ALIAS_INODE + 256
# Inodes below this bound are reserved: the above, and spares for moved objects.
FIRST_OBJECT_INODE = 1 << 16
DYNAMIC = 1 << 63


def bucket_inode(bucket: int, alias: bool = False) -> int:
    return (FIRST_ALIAS_INODE if alias else FIRST_BUCKET_INODE) + bucket


def bucket_of_inode(inode: int) -> int | None:
    """The bucket number of a bucket directory inode (either spelling), or None."""
    k = inode - FIRST_BUCKET_INODE
    return k & 0xFF if 0 <= k < 512 else None


def natural_inode(oid: bytes) -> int:
    """The top 63 bits of the id: stable across mounts, needs no table to compute."""
    return int.from_bytes(oid[:8], "big") >> 1


def inode_prefix(inode: int) -> bytes:
    """The first 8 bytes that an id with this natural inode starts with, low bit clear."""
    return (inode << 1).to_bytes(8, "big")


def shares_inode(oid: bytes, inode: int) -> bool:
    return int.from_bytes(oid[:8], "big") >> 1 == inode


class MovedInodes:
    """Inodes of the ids whose natural inode is shared with another id, or reserved.

    When two ids turn out to share a natural inode, neither keeps it: each gets a moved inode
    and the natural one is retired. The kernel may know the natural inode already (for the id
    that was there first); retired, it answers "not found" instead of the other id's bytes.
    """

    def __init__(self):
        self._inode_of: dict[bytes, int] = {}
        self._oid_of: dict[int, bytes] = {}
        self._retired: set[int] = set()
        self._next_spare = FIRST_OBJECT_INODE - 1

    def move(self, oid: bytes) -> int:
        """oid's moved inode, handing one out (and retiring its natural inode) the first time."""
        inode = self._inode_of.get(oid)
        if inode is not None:
            return inode
        if self._next_spare < FIRST_NAMESPACE_INODE + 64:
            raise OverflowError("no spare inode left for colliding object ids")
        inode = self._next_spare
        self._next_spare -= 1
        self._inode_of[oid] = inode
        self._oid_of[inode] = oid
        self._retired.add(natural_inode(oid))
        return inode

    def inode_for(self, oid: bytes) -> int:
        """oid's inode: its moved one if it has one, else its natural one."""
        return self._inode_of.get(oid) or natural_inode(oid)

    def retired(self, inode: int) -> bool:
        return inode in self._retired

    def oid_of(self, inode: int) -> bytes | None:
        return self._oid_of.get(inode)

    def ids_in_bucket(self, bucket: int) -> list[bytes]:
        return [oid for oid in self._inode_of if oid[0] == bucket]

    def __bool__(self) -> bool:
        return bool(self._inode_of)


class DynamicInodes:
    """Inodes for nodes that are not objects, kept while the kernel holds a lookup on them.

    A node is any hashable value that describes it completely (a namespace builds one per
    directory, link or file variant); the same node always gets the same inode while held.
    """

    def __init__(self):
        self._node_of: dict[int, object] = {}
        self._inode_of: dict[object, int] = {}
        self._counts: dict[int, int] = {}
        self._next = DYNAMIC | 1

    def __len__(self) -> int:
        return len(self._node_of)

    def inode_for(self, node) -> int:
        """The node's inode; does not count a lookup."""
        inode = self._inode_of.get(node)
        if inode is None:
            inode = self._next
            self._next += 1
            self._inode_of[node] = inode
            self._node_of[inode] = node
            self._counts[inode] = 0
        return inode

    def remember(self, inode: int) -> None:
        """Counts one kernel lookup of inode."""
        if inode in self._counts:
            self._counts[inode] += 1

    def node_of(self, inode: int):
        return self._node_of.get(inode)

    def forget(self, inode: int, count: int) -> None:
        left = self._counts.get(inode)
        if left is None:
            return
        left -= count
        if left > 0:
            self._counts[inode] = left
            return
        self._drop(inode)

    def drop_unheld(self, inode: int) -> None:
        """Drops a node handed out by inode_for that never reached the kernel."""
        if self._counts.get(inode) == 0:
            self._drop(inode)

    def _drop(self, inode: int) -> None:
        node = self._node_of.pop(inode)
        del self._counts[inode]
        del self._inode_of[node]
