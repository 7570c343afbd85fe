"""First-parent history: the commits `git rev-list --first-parent <commit>` lists, walked on demand.

    walk = FirstParents(store, commit)
    walk.extend(100)              # reads commits until 100 are known (or the history ends)
    walk.oid(0), walk.seconds[0]  # the newest commit and its committer date
    walk.done                     # True once the root (or an unreadable parent) was reached

A walk is a loop over one parent at a time, so a history of any length costs no stack, and
only as much of it is read as was asked for. A parent the store lacks (a shallow clone, a
pruned history) ends the walk there, as `git rev-list` stops at a shallow boundary; `error`
then says why.
"""

from __future__ import annotations

import threading
from array import array

from .errors import CorruptObject, ObjectNotFound
from .objects.object_headers import parse_commit


class FirstParents:
    """One first-parent walk, safe to extend from several threads."""

    def __init__(self, store, commit: bytes):
        self.store = store
        self.raw_len = store.format.raw_len
        self.ids = bytearray()  # raw ids, newest first
        self.seconds = array("q")  # committer dates (0 where a commit has none git can read)
        self.done = False
        self.error: Exception | None = None
        self._next: bytes | None = commit
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.seconds)

    def oid(self, k: int) -> bytes:
        return bytes(self.ids[k * self.raw_len:(k + 1) * self.raw_len])

    def extend(self, count: int) -> int:
        """Reads commits until count are known or the history ends; the number known."""
        with self._lock:
            while len(self.seconds) < count and self._next is not None:
                raw = self._next
                try:
                    kind, data = self.store.read(raw)
                    if kind != "commit":
                        raise CorruptObject("commit object", None, f"a first parent is a {kind}", oid=raw.hex())
                    commit = parse_commit(data, self.store.format, raw)
                except (ObjectNotFound, CorruptObject) as e:
                    if not len(self.seconds):
                        raise  # the first commit itself: nothing to show
                    self.error, self._next = e, None
                    break
                self.ids += raw
                self.seconds.append(commit.committer_date.seconds if commit.committer_date else 0)
                self._next = commit.parents[0] if commit.parents else None
            self.done = self._next is None
            return len(self.seconds)
