"""MNT/.refs: HEAD and every ref, as symlinks to the objects they name, from one table per refresh.

A ref appears under its full name without "refs/" (.refs/heads/main, .refs/tags/v1.0), root refs
such as HEAD at the top. A ref is a relative symlink to its object's file (../../ab/cdef...), so
`cat .refs/heads/main` prints the commit; a symbolic ref (HEAD, remotes/origin/HEAD) is a symlink
to the ref it names.

Every ref is read once per refresh into a RefTable (directories, links and their targets, built in
time linear in the number of refs), and lookups, listings and link targets are dict hits in it. A
refresh is what re-reading a directory means elsewhere in the mount: the opendir of any .refs
directory refreshes (so `ls` shows new and deleted refs), as does a lookup that misses (a ref just
created is found at once). A refresh first stats what the last read read (packed-refs, the loose
ref directories, tables.list: RefStore.fingerprint) and reads again only if one changed, so a walk
of thousands of ref directories reads the refs once. Concurrent refreshes share one read. A table older than
`fresh_for` (the kernel's own entry timeout) no longer answers readlink and stat on its own: the
one ref is read again (its file, or the packed-refs parse kept by stat identity), so a ref that
moves or goes is seen as soon as the kernel asks.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from typing import NamedTuple

log = logging.getLogger("gitfs")

PREFIX = "refs/"
# What a table holds per ref beyond its names' bytes: dict slots, the Ref, the target bytes.
REF_OVERHEAD = 300


class RefsDir(NamedTuple):
    """A directory of .refs: "" for .refs itself, "heads", "remotes/origin"..."""

    path: str


class RefLink(NamedTuple):
    name: str  # as shown: "HEAD", "heads/main"


def shown(full_name: str) -> str:
    """A ref's name in .refs: "refs/heads/main" -> "heads/main"; root refs stay as they are."""
    return full_name[len(PREFIX):] if full_name.startswith(PREFIX) else full_name


def link_target(name: str, ref, hex_len: int) -> bytes:
    """Where the link called name (as shown) points for ref (read() of it: a symbolic ref's first
    step, as git's `symbolic-ref --no-recurse`), relative to its directory."""
    if ref.target is not None:
        here = posixpath.dirname(name)
        return posixpath.relpath(shown(ref.target), here or ".").encode()
    up = "../" * (name.count("/") + 1)  # out of .refs and its subdirectories
    hex_id = ref.oid.hex()
    return f"{up}{hex_id[:2]}/{hex_id[2:]}".encode()


class RefTable:
    """Every ref from one read: directory -> its entries' names (sorted), shown name -> full name
    and link target."""

    __slots__ = ("dirs", "full_names", "targets", "read_at", "nbytes", "fingerprint", "watched")

    def __init__(self, refs: list, read_first, hex_len: int):
        """refs: RefStore.list(); read_first(name): RefStore.read (a symbolic ref's first step)."""
        children: dict[str, dict[str, None]] = {"": {}}
        full_names: dict[str, str] = {}
        targets: dict[str, bytes] = {}
        nbytes = 0
        for ref in refs:
            name = shown(ref.name)
            if name in full_names or name in children:
                log.warning(".refs: %s is shown once only (as %s)", ref.name, name)
                continue
            parent, _, leaf = name.rpartition("/")
            if not self._add_dirs(children, full_names, parent):
                continue  # a ref and a directory of refs with one name: git forbids it
            if ref.target is not None:
                ref = read_first(ref.name) or ref
            children[parent][leaf] = None
            full_names[name] = ref.name
            targets[name] = target = link_target(name, ref, hex_len)
            nbytes += len(name) + len(ref.name) + len(target) + REF_OVERHEAD
        self.dirs = {path: sorted(names) for path, names in children.items()}
        self.full_names = full_names
        self.targets = targets
        self.read_at = time.monotonic()
        self.nbytes = nbytes + REF_OVERHEAD * len(children)
        self.fingerprint: tuple | None = None  # RefStore.fingerprint() taken before the read
        self.watched: list[str] | None = None

    @staticmethod
    def _add_dirs(children: dict, links: dict, path: str) -> bool:
        """Directory path and those above it exist; False if one of them is a ref already."""
        missing = []
        while path and path not in children:
            if path in links:
                return False
            missing.append(path)
            path = path.rpartition("/")[0]
        for path in reversed(missing):  # each directory appears in its parent once, when first made
            parent, _, leaf = path.rpartition("/")
            children[parent][leaf] = None
            children[path] = {}
        return True

    def __len__(self) -> int:
        return len(self.full_names)


class RefsView:
    """The refs namespace: nodes to entries, for the view (gitfs/view/mount_view.py). current() and the
    answers from a table never block; refresh() and what reads a ref run in threads."""

    def __init__(self, refs, fmt, fresh_for: float = 1.0):
        self.refs = refs
        self.hex_len = fmt.hex_len
        self.fresh_for = fresh_for
        self._table: RefTable | None = None
        self._lock = threading.Lock()  # one read of every ref at a time
        self._started = 0  # reads of every ref begun
        self.reads = 0  # reads of every ref done: `gitfs status`, the tests
        self.checks = 0  # refreshes that found nothing changed

    # -- the table ------------------------------------------------------------------------

    def current(self) -> RefTable | None:
        """The latest table, or None before the first read (the loop: never blocks)."""
        return self._table

    def marker(self) -> int:
        """Taken before looking at the table: refresh(marker) then reads again only if no read
        began since."""
        return self._started

    def refresh(self, marker: int | None = None) -> RefTable:
        """Thread: a table as the refs are now: one whose read began after marker (concurrent
        refreshes share one read: under a 64-thread load, no thread queues behind a queue of
        reads), the latest if nothing it read has changed since (a few stats: `ls -R` of
        thousands of ref directories reads the refs once), or one read now."""
        with self._lock:
            table = self._table
            if marker is not None and self._started > marker and table is not None:
                return table
            self._started += 1
            if table is not None and table.fingerprint is not None:
                if self.refs.fingerprint(table.watched) == table.fingerprint:
                    self.checks += 1
                    table.read_at = time.monotonic()
                    return table
            watched = self.refs.backend.watched()
            fingerprint = self.refs.fingerprint(watched)
            table = RefTable(self.refs.list(), self.refs.read, self.hex_len)
            if self.refs.backend.watched() == watched:  # else: a directory came or went meanwhile
                table.fingerprint, table.watched = fingerprint, watched
            self._table = table
            self.reads += 1
            return table

    def table(self) -> RefTable:
        """Thread: the latest table, read if there is none."""
        table = self._table  # an empty table is falsy: compared with None
        return table if table is not None else self.refresh(self.marker())

    @property
    def nbytes(self) -> int:
        table = self._table
        return table.nbytes if table is not None else 0

    # -- answers ----------------------------------------------------------------------------

    @staticmethod
    def find(table: RefTable, node: RefsDir, name: bytes):
        """The node that name is in directory node by table, or None."""
        try:
            text = name.decode()
        except UnicodeDecodeError:
            return None
        path = f"{node.path}/{text}" if node.path else text
        if path in table.full_names:
            return RefLink(path)
        if path in table.dirs:
            return RefsDir(path)
        return None

    def lookup(self, node: RefsDir, name: bytes, marker: int):
        """Thread: the node that name is in directory node, after a refresh (the latest table
        missed it, or there was none)."""
        return self.find(self.refresh(marker), node, name)

    def list(self, node: RefsDir) -> list[tuple[bytes, object, int]] | None:
        """Thread: (name, node, st_size) of the directory's entries, sorted, from a table read
        now (a re-read directory shows the refs as they are); None if it is gone."""
        table = self.refresh(self.marker())
        names = table.dirs.get(node.path)
        if names is None:
            return None
        out = []
        for child in names:
            path = f"{node.path}/{child}" if node.path else child
            target = table.targets.get(path)
            if target is None:
                out.append((child.encode(), RefsDir(path), 0))
            else:
                out.append((child.encode(), RefLink(path), len(target)))
        return out

    def known_target(self, link: RefLink) -> bytes | None:
        """The link's target from a table young enough to answer for the ref, or None when the
        ref must be read (target())."""
        table = self._table
        if table is None or time.monotonic() - table.read_at > self.fresh_for:
            return None
        return table.targets.get(link.name)

    def exists(self, node) -> bool:
        """Thread."""
        if type(node) is RefsDir:
            return node.path in self.table().dirs
        return self.target(node) is not None

    def target(self, link: RefLink) -> bytes | None:
        """Thread: where the link points, relative to its directory; None if the ref is gone."""
        table = self.table()
        known = self.known_target(link)
        if known is not None:
            return known
        full_name = table.full_names.get(link.name)
        if full_name is None:
            return None
        ref = self.refs.read(full_name)
        return None if ref is None else link_target(link.name, ref, self.hex_len)
