"""Inode numbers: object inodes derived from ids (no table), others counted the way the kernel counts.

An object's inode is the top 63 bits of its id, so numbering the objects of a repository needs no
table at all, and the inode leads back to the id: its top byte names the bucket, and a search of
the bucket's sorted ids for those 63 bits finds the id. Ids that share their top 63 bits (or whose
bits fall in the reserved range) get "moved" inodes from a small table that never shrinks
(collisions are astronomically rare, and their inodes must stay stable for the life of the mount).

Everything else the mount shows that is not a fixed directory (the .refs and .tree namespaces)
gets a dynamic inode with bit 63 set, held while the kernel holds a lookup count on it; the
entries below a .tree/<rev> are numbered by place instead (bit 62 set too: TreeEntryInodes).
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict

from gitfs.tuning import UNHELD_SLOTS

ROOT_INODE = 1
FIRST_BUCKET_INODE = 2  # 256 buckets, then the same 256 spelt in upper case
FIRST_ALIAS_INODE = FIRST_BUCKET_INODE + 256
# Fixed inodes of the namespaces beside the buckets (gitfs/namespaces/namespace.py): NAMESPACE_INODES for
# each of at most MAX_NAMESPACES, from namespace_base(k). .refs, .tree and .log are namespaces
# 0, 1 and 2 (numbered so whether the mount shows them or not); those given to MountView from
# outside are numbered from FIRST_ADDED_NAMESPACE.
FIRST_NAMESPACE_INODE = FIRST_ALIAS_INODE + 256
NAMESPACE_INODES = 16
MAX_NAMESPACES = 16
REFS_NAMESPACE, TREE_NAMESPACE, LOG_NAMESPACE = 0, 1, 2
FIRST_ADDED_NAMESPACE = 3
NAMESPACES_END = FIRST_NAMESPACE_INODE + NAMESPACE_INODES * MAX_NAMESPACES
# Inodes below this bound are reserved: the above, and spares for moved objects.
FIRST_OBJECT_INODE = 1 << 16
DYNAMIC = 1 << 63
# Dynamic inodes with ENTRY set are tree entries, numbered by place: ENTRY | slot << 32 | position.
# The others carry their namespace's number in bits 56-61, so that owning one is a bit test.
ENTRY = 1 << 62
TAG_SHIFT = 56
TAG_MASK = 0x3F << TAG_SHIFT


def namespace_base(k: int) -> int:
    """The first fixed inode of the k-th namespace."""
    if not 0 <= k < MAX_NAMESPACES:
        raise ValueError(f"at most {MAX_NAMESPACES} namespaces")
    return FIRST_NAMESPACE_INODE + NAMESPACE_INODES * k


def is_object_inode(inode: int) -> bool:
    """Whether the inode can be an object's: natural (from its id) or moved apart."""
    return inode & DYNAMIC == 0 and inode >= NAMESPACES_END


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


def natural_inodes(blocks: list[bytes], raw_len: int) -> array:
    """The natural inodes of the ids in blocks (each concatenated raw ids), sorted, each once."""
    firsts = array("Q", b"".join(block[i : i + 8] for block in blocks for i in range(0, len(block), raw_len)))
    if sys.byteorder == "little":
        firsts.byteswap()  # ids are big-endian numbers
    return array("Q", sorted({first >> 1 for first in firsts}))


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
        self.on_move = None  # called (from any thread) after an id moved: the compiled request path

    def move(self, oid: bytes) -> int:
        """oid's moved inode, handing one out (and retiring its natural inode) the first time."""
        inode = self._inode_of.get(oid)
        if inode is not None:
            return inode
        if self._next_spare < NAMESPACES_END:
            raise OverflowError("no spare inode left for colliding object ids")
        inode = self._next_spare
        self._next_spare -= 1
        self._inode_of[oid] = inode
        self._oid_of[inode] = oid
        self._retired.add(natural_inode(oid))
        if self.on_move is not None:
            self.on_move()
        return inode

    def inode_for(self, oid: bytes) -> int:
        """oid's inode: its moved one if it has one, else its natural one."""
        return self._inode_of.get(oid) or natural_inode(oid)

    def retired(self, inode: int) -> bool:
        return inode in self._retired

    def retired_inodes(self) -> list[int]:
        return list(self._retired)

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

    def __init__(self, namespace: int = 0):
        self._node_of: dict[int, object] = {}
        self._inode_of: dict[object, int] = {}
        self._counts: dict[int, int] = {}
        self._tag = DYNAMIC | namespace << TAG_SHIFT
        self._next = self._tag | 1

    def owns(self, inode: int) -> bool:
        """Whether the inode is in this table's range (handed out or not)."""
        return inode & (DYNAMIC | ENTRY | TAG_MASK) == self._tag

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


SLOT_SHIFT = 32
SLOTS = 1 << 30
POSITION_MASK = (1 << SLOT_SHIFT) - 1


class EntryInodes:
    """The inodes of one tree listing's entries, by position: base | k."""

    __slots__ = ("base",)

    def __init__(self, base: int):
        self.base = base

    def __getitem__(self, k: int) -> int:
        return self.base | k


class EntrySlot:
    """One directory whose entries have inodes: its inode, its node, and while the kernel
    holds any of its entries, how many lookups it holds and the tree they are in."""

    __slots__ = ("dir_inode", "directory", "tree", "held")

    def __init__(self, dir_inode: int, directory):
        self.dir_inode = dir_inode
        self.directory = directory
        self.tree = None
        self.held = 0


class TreeEntryInodes:
    """Inodes of tree entries by place: a directory gets a slot, entry k of its tree the inode
    DYNAMIC | ENTRY | slot << 32 | k. The kernel may hold millions of entries (readdirplus hands
    it every entry of a listing) at no cost per entry: lookups are counted per directory, and a
    directory's parsed tree is kept while the kernel holds any of its entries, so that an entry's
    node can be made again from its inode. A slot is never reused, so an inode never changes
    meaning; a directory keeps its slot (and its entries their inodes) while the kernel holds any
    of them, and for a while after (UNHELD_SLOTS). The trees kept for the kernel take at most
    pinned_limit bytes: past it the least recently used are let go (pinned() says whether a
    slot's tree is kept), and the caller parses them again when the kernel asks about them."""

    def __init__(self, unheld_kept: int = UNHELD_SLOTS, pinned_limit: int = 1 << 62):
        self.unheld_kept = unheld_kept
        self.pinned_limit = pinned_limit
        self._slots: dict[int, EntrySlot] = {}
        self._by_dir: dict[int, int] = {}
        self._unheld: OrderedDict[int, None] = OrderedDict()
        self._next = 1
        self._pinned: OrderedDict[int, list] = OrderedDict()  # id(tree) -> [tree, {slot numbers}], oldest first
        self.pinned_bytes = 0  # what the trees the kernel holds entries of take, each once

    @staticmethod
    def owns(inode: int) -> bool:
        return inode & (DYNAMIC | ENTRY) == DYNAMIC | ENTRY

    @staticmethod
    def position(inode: int) -> int:
        return inode & POSITION_MASK

    def base(self, dir_inode: int, directory) -> int:
        """The inode of entry 0 of the directory whose inode is dir_inode."""
        s = self._by_dir.get(dir_inode)
        if s is None:
            if self._next >= SLOTS:
                raise OverflowError("no tree entry slot left")
            s, self._next = self._next, self._next + 1
            self._slots[s] = EntrySlot(dir_inode, directory)
            self._by_dir[dir_inode] = s
            self._unheld[s] = None
            self._trim()
        return DYNAMIC | ENTRY | (s << SLOT_SHIFT)

    def slot(self, inode: int) -> EntrySlot | None:
        """The slot of an entry's inode (or of a base), or None if it is not known."""
        return self._slots.get((inode >> SLOT_SHIFT) & (SLOTS - 1)) if self.owns(inode) else None

    def held(self, base: int, count: int, dir_inode: int, directory, tree) -> None:
        """The kernel took count lookups of entries of the directory whose entries start at
        base (a slot trimmed meanwhile comes back under its number)."""
        s = (base >> SLOT_SHIFT) & (SLOTS - 1)
        slot = self._slots.get(s)
        if slot is None:
            slot = self._slots[s] = EntrySlot(dir_inode, directory)
            self._by_dir.setdefault(dir_inode, s)
        slot.held += count
        self._unheld.pop(s, None)
        self.pin(s, tree)

    def pin(self, s: int, tree) -> None:
        """Slot s's tree is kept (the kernel holds entries of it), as the most recently used."""
        slot = self._slots[s]
        if slot.tree is not tree:
            self._unpin(s)
            slot.tree = tree
            pin = self._pinned.get(id(tree))
            if pin is None:
                pin = self._pinned[id(tree)] = [tree, set()]
                self.pinned_bytes += tree.nbytes
            pin[1].add(s)
        self._pinned.move_to_end(id(tree))
        while self.pinned_bytes > self.pinned_limit and len(self._pinned) > 1:
            _, (old, numbers) = self._pinned.popitem(last=False)
            self.pinned_bytes -= old.nbytes
            for number in numbers:
                self._slots[number].tree = None  # still held: parsed again when asked about

    def number(self, inode: int) -> int:
        return (inode >> SLOT_SHIFT) & (SLOTS - 1)

    def forget(self, inode: int, count: int) -> None:
        s = (inode >> SLOT_SHIFT) & (SLOTS - 1)
        slot = self._slots.get(s)
        if slot is None:
            return
        slot.held -= count
        if slot.held <= 0:
            slot.held = 0
            self._unpin(s)
            self._unheld[s] = None
            self._trim()

    def _unpin(self, s: int) -> None:
        slot = self._slots[s]
        tree, slot.tree = slot.tree, None
        if tree is None:
            return
        pin = self._pinned[id(tree)]
        pin[1].discard(s)
        if not pin[1]:
            del self._pinned[id(tree)]
            self.pinned_bytes -= tree.nbytes

    def _trim(self) -> None:
        while len(self._unheld) > self.unheld_kept:
            s, _ = self._unheld.popitem(last=False)
            slot = self._slots.pop(s)
            if self._by_dir.get(slot.dir_inode) == s:
                del self._by_dir[slot.dir_inode]

    def __len__(self) -> int:
        return len(self._slots)
