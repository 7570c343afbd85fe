"""Tree objects: entries of "<octal mode> SP <name> NUL <raw id>", read one at a time.

    tree = Tree(data, store.format, oid)      # data: the tree object's bytes (store.read)
    for entry in tree.entries(skipped=cb):    # TreeEntry(mode, name, oid), in stored order
        ...
    tree.find(b"README")                      # TreeEntry or None, by bisection after one pass
    len(tree); tree.name_at(i); tree.oid_at(i)  # usable entries by position, from a compact index

A tree git cannot parse raises CorruptObject. An entry whose name cannot be a path component
(".", "..", empty, containing "/", or a ".git" that git refuses to check out) or that repeats
the previous name is not yielded: it goes to skipped(name, reason), so the caller can log it.
"""

from __future__ import annotations

import stat
from array import array
from bisect import bisect_left
from typing import Callable, Iterator, NamedTuple

from ..errors import CorruptObject
from ..oid import ObjectFormat
from .. import accelerators

TREE = 0o040000
BLOB = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
GITLINK = 0o160000  # a submodule's commit

# The modes git writes, parsed without int(): most entries take this path.
_COMMON_MODES = {b"40000": TREE, b"100644": BLOB, b"100755": EXECUTABLE, b"120000": SYMLINK,
                 b"160000": GITLINK}
_OCTAL = b"01234567"

Skipped = Callable[[bytes, str], None]


class TreeEntry(NamedTuple):
    mode: int  # canonical (canon_mode): TREE, BLOB, EXECUTABLE, SYMLINK or GITLINK
    name: bytes
    oid: bytes  # raw


def canon_mode(mode: int) -> int:
    """object.h canon_mode: what git makes of any mode a tree holds (100664 is a 100644,
    a mode of no known type is a gitlink)."""
    if stat.S_ISREG(mode):
        return EXECUTABLE if mode & 0o100 else BLOB
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISDIR(mode):
        return TREE
    return GITLINK


def name_problem(name: bytes) -> str | None:
    """Why name cannot be a path component in a checkout, or None if it can."""
    if not name:
        return "empty name"
    if name in (b".", b".."):
        return f"name {name.decode()!r}"
    if b"/" in name:
        return "name contains '/'"
    if name.lower() == b".git":
        return "a .git entry (git refuses to check one out)"  # read-cache.c verify_dotfile
    return None


class Tree:
    """One tree object's entries. Iterating builds one entry at a time; find() and the access
    by position index the entry offsets and modes (6 bytes per entry) on first use."""

    __slots__ = ("data", "raw_len", "oid", "_offsets", "_nuls", "_modes", "_sorted")

    def __init__(self, data: bytes, fmt: ObjectFormat, oid: bytes | None = None):
        self.data = data
        self.raw_len = fmt.raw_len
        self.oid = oid
        self._offsets: array | None = None

    def _corrupt(self, offset: int, reason: str) -> CorruptObject:
        hex_id = self.oid.hex() if self.oid else None
        return CorruptObject("tree object", offset, reason, oid=hex_id)

    def _mode(self, digits: bytes, offset: int) -> int:
        mode = _COMMON_MODES.get(digits)
        if mode is not None:
            return mode
        if not digits or digits.strip(_OCTAL):
            raise self._corrupt(offset, "malformed mode in tree entry")
        # object.h parse_mode keeps 16 bits; the last 6 octal digits decide those.
        return canon_mode(int(digits[-6:], 8) & 0xFFFF)

    def entries(self, skipped: Skipped | None = None) -> Iterator[TreeEntry]:
        """The usable entries in stored order; skipped(name, reason) hears about the others."""
        data = self.data
        for mode, space, nul, after in self._frames(skipped):
            yield TreeEntry(mode, data[space + 1 : nul], data[nul + 1 : after])

    def _frames(self, skipped: Skipped | None) -> Iterator[tuple[int, int, int, int]]:
        """(mode, offset of the space before the name, of the NUL after it, of the next entry)
        of each usable entry, checking the framing and the names as it goes: the one parse of
        a tree's bytes in Python, for entries() and the index (odb/_tree.c does the same)."""
        data, raw_len = self.data, self.raw_len
        pos, end = 0, len(data)
        find, modes = data.find, _COMMON_MODES
        previous = None
        while pos < end:
            space = find(b" ", pos)
            if space < 0:
                raise self._corrupt(pos, "truncated tree entry (no space after the mode)")
            mode = modes.get(data[pos:space]) or self._mode(data[pos:space], pos)
            nul = find(b"\0", space + 1)
            after = nul + 1 + raw_len
            if nul < 0 or after > end:
                raise self._corrupt(pos, "too-short tree object (entry cut off)")
            name = data[space + 1 : nul]
            # Only an empty name, one with "/", or one starting with "." can be a problem.
            if not name or b"/" in name or name[0] == 46 or name == previous:
                problem = name_problem(name) or ("duplicate entry" if name == previous else None)
                if problem is not None:
                    previous, pos = name, after
                    if skipped is not None:
                        skipped(name, problem)
                    continue
            previous, pos = name, after
            yield mode, space, nul, after

    __iter__ = entries

    # -- the index: usable entries by position, and lookup by name -----------------------

    def index(self, skipped: Skipped | None = None) -> int:
        """Indexes the usable entries (the offsets of each one's space and NUL, and its mode: 10
        bytes an entry, where TreeEntry objects take some 200) and returns their count. skipped(name, reason) hears
        about the others, on the call that builds the index."""
        if self._offsets is None:
            self._index(skipped)
        return len(self._offsets)

    __len__ = index

    def name_at(self, i: int) -> bytes:
        return self.data[self._offsets[i] + 1 : self._nuls[i]]

    def oid_at(self, i: int) -> bytes:
        nul = self._nuls[i] + 1
        return self.data[nul : nul + self.raw_len]

    def mode_at(self, i: int) -> int:
        return self._modes[i]

    def layout(self) -> tuple[bytes, array, array, array]:
        """(data, spaces, nuls, modes): entry i is named data[spaces[i] + 1 : nuls[i]], its id
        follows nuls[i], its mode is modes[i]. For loops over millions of entries, which a
        method call per entry would slow down."""
        self.index()
        return self.data, self._offsets, self._nuls, self._modes

    def modes(self) -> array:
        """The canonical mode of each usable entry, by position."""
        self.index()
        return self._modes

    def ids(self, start: int, stop: int) -> bytes:
        """The raw ids of entries start..stop, one after the other."""
        if _accelerator is not None and self._nuls.itemsize == 4:
            return _accelerator.ids(self.data, self._nuls, start, stop, self.raw_len)
        data, n = self.data, self.raw_len
        return b"".join([data[nul + 1 : nul + 1 + n] for nul in self._nuls[start:stop]])

    @property
    def nbytes(self) -> int:
        """Roughly what the tree holds in memory: its bytes and its index."""
        offsets = self._offsets
        return len(self.data) + 200 + (0 if offsets is None else (2 * offsets.itemsize + 2) * len(offsets))

    def position(self, name: bytes) -> int | None:
        """The index of the entry called name (usable names only), in O(log n). A tree whose
        entries are not in git's order (a damaged or hand-made one) is searched linearly."""
        if name_problem(name) is not None:
            return None
        self.index()
        if not self._sorted:
            return next((i for i in range(len(self._offsets)) if self.name_at(i) == name), None)
        # git sorts a subtree as if its name ended in "/": look for both spellings.
        for key, want_tree in ((name, False), (name + b"/", True)):
            i = bisect_left(range(len(self._offsets)), key, key=self._key_at)
            if i < len(self._offsets) and self._key_at(i) == key and (self._modes[i] == TREE) == want_tree:
                return i
        return None

    def find(self, name: bytes) -> TreeEntry | None:
        """The entry called name (usable names only), or None; see position()."""
        i = self.position(name)
        return None if i is None else self._entry_at(i)

    def _index(self, skipped: Skipped | None) -> None:
        """The index, from _frames (an entry costs no object beyond its frame tuple); in C
        (odb/_tree.c) when built, for a tree with nothing to report."""
        data, raw_len = self.data, self.raw_len
        found = _accelerator.index(data, raw_len) if _accelerator is not None else None
        if found is not None:
            spaces, nuls, modes, ordered = found
            # Viewed in place, not copied into arrays: the index of a big tree is built once.
            self._offsets, self._nuls = memoryview(spaces).cast("I"), memoryview(nuls).cast("I")
            self._modes = array("H")
            self._modes.frombytes(modes)
            self._sorted = ordered
            return
        typecode = "I" if len(data) < 1 << 32 else "Q"
        offsets, nuls, modes = array(typecode), array(typecode), array("H")
        previous_key, ordered = b"", True
        for mode, space, nul, _ in self._frames(skipped):
            offsets.append(space)
            nuls.append(nul)
            modes.append(mode)
            name = data[space + 1 : nul]
            key = name + b"/" if mode == TREE else name
            if key <= previous_key:
                ordered = False
            previous_key = key
        self._offsets, self._nuls, self._modes, self._sorted = offsets, nuls, modes, ordered

    def _key_at(self, i: int) -> bytes:
        name = self.name_at(i)
        return name + b"/" if self._modes[i] == TREE else name

    def _entry_at(self, i: int) -> TreeEntry:
        return TreeEntry(self._modes[i], self.name_at(i), self.oid_at(i))


# The compiled module (odb/_tree.c), or None when it was not built; `_accelerator` is what the
# index uses (GITFS_PURE_PYTHON=1: none).
compiled, _accelerator, IMPLEMENTATION = accelerators.load("_tree")
