"""How much of its packs' mappings a process keeps resident.

Random reads (a grep over many objects) touch pages all over a pack, and the pages a process
touched count in its RSS until it hands them back (odb/tuning.py says what each budget trades).
A pack counts the 64 KiB windows of its mapping that reads touched and, past its own budget,
gives all of its pages back; past the process's budget over all packs, every pack does. A
stream over a big entry gives back the pages it has read past as it goes.
"""

from __future__ import annotations

import mmap
import threading
import weakref

from ..tuning import PACK_RESIDENT_BUDGET as RESIDENT_BUDGET, PROCESS_BUDGET, STREAM_RELEASE, WINDOW_SHIFT


class ResidentWindows:
    """The page budget of one pack, a base of Pack: the windows of its mapping (_buf) that reads
    touched, one mark each in _windows (odb/_engine.c marks them too), _resident of them."""

    _buf: object  # the mapping, or a small pack's bytes (nothing to give back); None when unmapped
    _windows: bytearray
    _resident: int

    def _touch(self, start: int, stop: int) -> None:
        windows = self._windows
        before = self._resident
        for w in range(start >> WINDOW_SHIFT, ((stop - 1) >> WINDOW_SHIFT) + 1):
            if w < len(windows) and not windows[w]:
                windows[w] = 1
                self._resident += 1
        if self._resident != before:
            self.touched(self._resident - before, counted=True)

    def touched(self, new: int, counted: bool = False) -> None:
        """`new` windows were marked in _windows (by odb/_engine.c, or _touch which counted them)."""
        if not new:
            return
        before = self._resident - new if counted else self._resident
        self._resident = before + new
        if self._resident << WINDOW_SHIFT > RESIDENT_BUDGET:
            self._release_all()
        _resident_packs.add(self, self._resident - before)

    def _release_all(self) -> None:
        buf = self._buf
        self._windows = bytearray(len(self._windows))
        self._resident = 0
        if isinstance(buf, mmap.mmap):
            try:
                buf.madvise(mmap.MADV_DONTNEED)
            except ValueError:
                pass  # closed meanwhile (another thread, the LRU of open packs): nothing is mapped

    def _release_pages(self, start: int, stop: int) -> int:
        """Drops this process's mapping of whole pages in [start, stop); they re-fault from the page cache."""
        buf = self._buf
        if isinstance(buf, mmap.mmap):
            lo = start - start % mmap.PAGESIZE
            hi = stop - stop % mmap.PAGESIZE
            if hi > lo:
                buf.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        return stop


class PageRelease:
    """Hands back the pages a stream has read past, every STREAM_RELEASE bytes of input
    (shared by an inflation's copies: a page one of them still wants re-faults from the page
    cache)."""

    def __init__(self, pack: ResidentWindows, start: int):
        self._pack = pack
        self._released = start

    def __call__(self, pos: int) -> None:
        if pos - self._released >= STREAM_RELEASE:
            self._released = self._pack._release_pages(self._released, pos)


class _ResidentPacks:
    """The packs of this process holding touched windows, against PROCESS_BUDGET: past it, all
    of them hand their pages back. Counts are approximate under threads (a lost increment only
    delays a release); the set itself is changed under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._packs: dict[int, weakref.ref] = {}
        self._windows = 0

    def add(self, pack: ResidentWindows, windows: int) -> None:
        self._windows += windows
        known = self._packs.get(id(pack))
        if known is None or known() is not pack:  # (an id may be reused once a pack is gone)
            with self._lock:
                self._packs[id(pack)] = weakref.ref(pack)
        if self._windows << WINDOW_SHIFT > PROCESS_BUDGET:
            with self._lock:
                packs, self._packs, self._windows = list(self._packs.values()), {}, 0
            for ref in packs:
                held = ref()
                if held is not None:
                    held._release_all()


_resident_packs = _ResidentPacks()
