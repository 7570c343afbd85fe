"""Which inode an object file has, and which object an inode is.

An object's inode is its id's top 63 bits (natural_inode): no table, and the same number in
every mount of the repository. Two ids that share those bits (never seen in practice, but
possible) both move to spare inodes below FIRST_OBJECT_INODE (inodes.py MovedInodes), and
the number they shared is retired. An inode's id comes from the latest lookups, the bucket's
listing, or a prefix search of the store.
"""

from __future__ import annotations

import odb
from odb.lru import LRU

from gitfs.view.inodes import FIRST_OBJECT_INODE, inode_prefix, natural_inode, shares_inode
from gitfs.namespaces.namespace import no_entry
from gitfs.tuning import RECENT_INODES


class ObjectInodes:
    """small(fn, *args) runs a piece of store work (on the loop or in a thread: MountView.small);
    latest holds the latest bucket listings by bucket."""

    def __init__(self, store, moved, latest: LRU, small):
        self.store = store
        self.moved = moved
        self._latest = latest
        self._small = small
        self.recent: LRU[int, bytes] = LRU(max_items=RECENT_INODES)  # inode -> id, of the latest lookups
        # Others that know an inode's id, asked before a prefix search of the store: the compiled
        # request path, whose LOOKUPs fill no `recent` (resolve(inode) -> raw id or None).
        self.resolvers: list = []

    def stat_and_inode(self, oid: bytes) -> tuple[int, object, int]:
        """Thread or loop: the object's size and Access, and its inode (moved if another id
        shares its natural one)."""
        size, access = self.store.stat(oid)
        inode = self.moved.inode_for(oid)
        if inode >= FIRST_OBJECT_INODE and not self._natural_is_unique(oid, inode):
            inode = self.moved.move(oid)
        elif inode < FIRST_OBJECT_INODE and inode == natural_inode(oid):
            inode = self.moved.move(oid)
        return size, access, inode

    def remember(self, inode: int, oid: bytes) -> None:
        self.recent.put(inode, oid)

    async def oid_of(self, inode: int) -> bytes:
        """The id of an object's inode; ENOENT when no object (or more than one) has it."""
        if self.moved.retired(inode):
            raise no_entry()
        oid = self.recent.peek(inode) or self.moved.oid_of(inode)
        if oid is not None:
            return oid
        if inode < FIRST_OBJECT_INODE:
            raise no_entry()
        listing = self._latest.peek(inode >> 55)
        if listing is not None:
            k = listing.index_of_inode(inode)
            if k is not None:
                return listing.oid(k)
        for resolve in self.resolvers:
            oid = resolve(inode)
            if oid is not None:
                self.remember(inode, oid)
                return oid
        found = await self._small(self._ids_with_inode, inode)
        if len(found) != 1:
            for oid in found:
                self.moved.move(oid)  # a collision met only now: neither id keeps this inode
            raise no_entry()
        self.remember(inode, found[0])
        return found[0]

    def _natural_is_unique(self, oid: bytes, inode: int) -> bool:
        listing = self._latest.peek(oid[0])  # a thread, or the loop: peek() only reads
        if listing is not None and listing.generation == self.store.generation and listing.index_of(oid) is not None:
            k = listing.index_of_inode(inode)
            return k is not None and listing.oid(k) == oid and (k + 1 >= listing.count or listing.inodes[k + 1] != inode)
        return len(self._ids_with_inode(inode)) <= 1

    def _ids_with_inode(self, inode: int) -> list[bytes]:
        """Thread or loop: the ids whose natural inode this is, from the store (a prefix search)."""
        try:
            found = [self.store.resolve_prefix(inode_prefix(inode).hex()[:15])]
        except odb.ObjectNotFound:
            return []
        except odb.AmbiguousPrefix as e:
            found = e.candidates
        return [raw for raw in map(bytes.fromhex, found) if shares_inode(raw, inode)]
