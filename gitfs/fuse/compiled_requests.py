"""The compiled request path's Python side: what gitfs/fuse/_request_path.c may answer, and when.

A random read is two requests, the LOOKUP of BUCKET/REST and the READ of its inode. Answered in
Python, each costs tens of microseconds of interpreter and event loop on top of the object's own
work; _request_path.c answers both inside pyfuse3's session loop without the GIL (a patched pyfuse3,
gitfs/pyfuse3-fast-path.patch), and leaves every request it cannot answer exactly as the Python
path would to that path, untouched. What it answers from is a snapshot taken here: the
repository's multi-pack-index and packs (odb/served_index.py), and the natural inodes it must not
hand out (those of ids outside the index, and the ones Python moved: gitfs/view/inodes.py).

The snapshot is taken again whenever the store's generation moves (a refresh saw the repository
change, MountView._check_generation) and when an inode is moved; all of it on the loop's thread,
the only one the session loop answers requests in.
"""

from __future__ import annotations

import logging
import os
import stat
from array import array

from odb.served_index import ids_outside, served_index

from gitfs import features
from gitfs.tuning import DIRECTORY_BLOCK, DIRECTORY_TIMEOUT, FILE_BLOCK, INLINE_MAX, OBJECT_TIMEOUT
from gitfs.view.inodes import FIRST_BUCKET_INODE, FIRST_OBJECT_INODE, natural_inodes

try:
    from gitfs.fuse import _request_path
except ImportError:  # not built: every request is answered in Python
    _request_path = None

log = logging.getLogger("gitfs")

# Ids outside the multi-pack-index whose natural inodes the snapshot holds (8 bytes each), read at
# every snapshot on the loop's thread (about 1 us an id in Python): past this, LOOKUP is answered
# in Python, which searches the store for each (loose objects are seldom more than git's
# gc.auto of 6,700; an alternate's whole store may be). Not measured further.
OUTSIDE_LIMIT = 1 << 16
# Packs the snapshot holds open: every pack of the index is mapped while it is served.
MAX_PACKS = 64


def unavailable() -> str | None:
    """Why this installation answers every request in Python, or None."""
    if os.environ.get("GITFS_COMPILED_REQUESTS") == "0":
        return "off (GITFS_COMPILED_REQUESTS=0)"
    if _request_path is None:
        return "not built (gitfs/fuse/_request_path.c)"
    if not features.offers_requests():
        return f"pyfuse3 lacks set_fast_path; run: {features.fast_path_command()}"
    if features.engine_accelerated() is None:
        return "odb's C engine is not in use"
    return None


class CompiledRequests:
    def __init__(self, view, install):
        """view: the MountView whose store, moved inodes and cache of bases it answers from;
        install(capsule or None): pyfuse3.set_fast_path."""
        self.view = view
        self._install = install
        store = view.store
        self.path = _request_path.RequestPath(store.engine_cache, FIRST_BUCKET_INODE, FIRST_OBJECT_INODE, INLINE_MAX,
                                              int(OBJECT_TIMEOUT), FILE_BLOCK)
        self.state = "starting"
        self.served = None
        self._generation = None
        self._stale = False
        view.moved.on_move = self._moved  # any thread
        view.watchers.append(self.watch)
        view.object_inodes.resolvers.append(self.path.oid_of)
        view.root_watchers.append(self._root_access)
        self._root_access(view.root_access)

    def _root_access(self, access) -> None:
        """What a bucket directory shows (MountView.dir_attr), for the buckets' LOOKUPs."""
        self.path.set_root(stat.S_IFDIR | access.mode, access.uid, access.gid, access.mtime_ns, DIRECTORY_TIMEOUT,
                           DIRECTORY_BLOCK)

    def start(self) -> None:
        self.renew()
        self._install(self.path.capsule())

    def close(self) -> None:
        self._install(None)
        self.path.disable()
        self.served = None

    def _moved(self) -> None:
        self._stale = True
        self.path.mark_stale()

    def watch(self) -> None:
        """On the loop's thread, when store work found the repository changed, and once a second
        (Session.upkeep: requests answered in C run no Python): counts what the compiled reads
        touched, and takes a new snapshot if the repository (or a moved inode) changed; none once
        the repository is gone (the Python path then says so)."""
        if self.served is not None:
            self.served.feed_touched(self.path.touched)
        store = self.view.store
        if self._stale or store.generation != self._generation or (store.gone is not None and self.served):
            self.renew()

    def renew(self) -> None:
        store = self.view.store
        self._stale = False
        self._generation = store.generation
        try:
            why = self._take_snapshot(store)
        except Exception as e:  # a repository this code cannot serve must still mount and read
            log.exception("the compiled request path could not take a snapshot")
            why = f"the snapshot failed ({type(e).__name__}: {e})"
        if why is not None:
            self._off(why)
        elif self.state != "on":
            log.debug("compiled request path: on")
            self.state = "on"

    def _take_snapshot(self, store) -> str | None:
        """Hands the C side a snapshot of the store; None, or why there is none to serve."""
        found = served_index(store, MAX_PACKS)
        if isinstance(found, str):
            return found
        raw_len = store.format.raw_len
        blocks = ids_outside(store, OUTSIDE_LIMIT)
        if blocks is None:
            return f"more than {OUTSIDE_LIMIT:,} objects outside the multi-pack-index"
        index = found.index
        ooff, _, _, _, loff, n_large = index.entry_layout()
        packs = [None if p is None else
                 (p.data, p.end, getattr(p.header, "fd", -1), found.limits, p.pack.key,
                  stat.S_IFREG | p.access.mode, p.access.uid, p.access.gid, p.access.mtime_ns)
                 for p in found.packs]
        retired = array("Q", sorted(self.view.moved.retired_inodes()))
        self.path.renew(index.buf, index.ids.fanout_array(), index.ids.start, ooff, loff, n_large, index.count,
                        raw_len, packs, natural_inodes(blocks, raw_len), retired,
                        [p.header for p in found.packs if p is not None])
        self.served = found
        if self._stale:  # an inode moved (in a worker thread) after `retired` was read
            self.path.mark_stale()
        return None

    def _off(self, why: str) -> None:
        self.path.disable()
        self.served = None
        if self.state != why:
            log.info("lookups and reads are answered in Python: %s", why)
        self.state = why

    def status(self) -> dict:
        if self.served is not None:
            self.served.feed_touched(self.path.touched)
        return {"state": self.state, **self.path.counts()}
