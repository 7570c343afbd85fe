"""MNT/.log/<rev>: a revision's first-parent history, newest first, one symlink per commit.

<rev> is any revision odb.revision reads (as in .tree, ":" stands for "/" outside {...}),
peeled to a commit. Entry k (0 is <rev> itself) is called "<k, 7 digits>-<12 hex digits>",
e.g. 0000000-1a2b3c4d5e6f: the names sort in history order (`ls`, `sort`), and stay in
order up to ten million commits. Each is a relative symlink to the commit's object file
(../../1a/2b3c...), with the committer date as its mtime. .log itself lists nothing, so
that `find MNT` and `grep -r MNT` never walk into it.

The history is walked as readdir asks for it (odb.history.FirstParents, in a worker thread),
in chunks that grow: `ls -U .log/main | head` reads a few dozen commits of any history, and a
full listing shows its first entries while the rest is still being walked. Walks are kept by
commit for the lookups and readlinks that follow a listing.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from odb import revision
from odb.history import FirstParents
from odb.lru import LRU

from gitfs.tuning import FIRST_CHUNK, MAX_CHUNK, WALKS_KEPT

log = logging.getLogger("gitfs")

POSITION_DIGITS = 7
ABBREV = 12


class LogDir(NamedTuple):
    name: bytes  # the <rev> component as given
    commit: bytes
    mtime_ns: int | None


class LogLink(NamedTuple):
    commit: bytes
    mtime_ns: int


class LogListing:
    """A .log/<rev> directory being read: its walk."""

    __slots__ = ("walk",)

    def __init__(self, walk: FirstParents):
        self.walk = walk


def entry_name(k: int, oid: bytes) -> bytes:
    return b"%0*d-%s" % (POSITION_DIGITS, k, oid.hex()[:ABBREV].encode())


def position_of(name: bytes) -> int | None:
    """The position a name claims (its id part is checked against the walk), or None."""
    digits, dash, abbrev = name.partition(b"-")
    if not dash or len(digits) < POSITION_DIGITS or not digits.isdigit() or len(abbrev) != ABBREV:
        return None
    if len(digits) > POSITION_DIGITS and digits.startswith(b"0"):
        return None  # one spelling per position
    return int(digits)


def link_target(oid: bytes) -> bytes:
    """From .log/<rev>/<entry> back to the bucket view: ../../ab/cdef..."""
    hex_id = oid.hex()
    return f"../../{hex_id[:2]}/{hex_id[2:]}".encode()


def chunk_after(known: int) -> int:
    return min(MAX_CHUNK, max(FIRST_CHUNK, known))


class LogView:
    """The .log namespace: names to walks. Runs in worker threads (it reads objects)."""

    def __init__(self, store, refs):
        self.store = store
        self.refs = refs
        self._walks: LRU[bytes, FirstParents] = LRU(max_items=WALKS_KEPT)
        self._lock = threading.Lock()

    def resolve(self, component: bytes) -> LogDir:
        """The commit a <rev> names (ObjectNotFound, BadRevision, AmbiguousPrefix)."""
        rev = revision.decode_component(component)
        found = revision.resolve_commit(self.store, self.refs, rev)
        if found.also:
            log.info(".log/%s: %s also names %s (git: refname is ambiguous)", rev, rev, ", ".join(found.also))
        walk = self.walk(found.oid)
        walk.extend(1)
        return LogDir(component, found.oid, walk.seconds[0] * 1_000_000_000)

    def walk(self, commit: bytes) -> FirstParents:
        with self._lock:
            walk = self._walks.get(commit)
            if walk is None:
                walk = FirstParents(self.store, commit)
                self._walks.put(commit, walk)
            return walk

    def lookup(self, directory: LogDir, name: bytes) -> LogLink | None:
        k = position_of(name)
        if k is None:
            return None
        walk = self.walk(directory.commit)
        if walk.extend(k + 1) <= k:
            return None
        oid = walk.oid(k)
        if entry_name(k, oid) != name:
            return None
        return LogLink(oid, walk.seconds[k] * 1_000_000_000)
