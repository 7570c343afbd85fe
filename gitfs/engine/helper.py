"""A helper process: inflates objects and reads sizes for the mount, so odb's work runs beside the loop.

Threads of one process take turns under the GIL: odb's Python code in a thread of the mount
would stall the FUSE loop. The mount starts helpers as fresh interpreters
(`python -c "from gitfs.engine.helper import main; main()"`), never by forking its threaded
self, so a helper holds no lock some other thread held (it inherits the FUSE descriptor on
purpose, only to push pages into the kernel's cache). What it computes for each request is
answers.py. It reads requests on stdin and answers on stdout (helper_protocol.py), serving the
most urgent request it holds first: an urgent read sent while it works through read-ahead is
answered next. It exits when the mount closes the pipe, or dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import os
import select
import signal

import odb
from odb import refused_paths

from gitfs.fuse import fuse_notify
from gitfs.engine import helper_protocol as hp
from gitfs.engine.answers import answers, load
from gitfs.engine import memory
from gitfs.tuning import IDLE_AFTER, NEAR_READER

_PR_SET_PDEATHSIG = 1


class _ForwardLogs(logging.Handler):
    """Log records go to the mount, which owns the log."""

    def __init__(self, out: int):
        super().__init__(logging.INFO)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            hp.write_frame(self._out, hp.LogLine(record.levelno, record.name, self.format(record)))
        except hp.HelperGone:
            pass


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the closed pipe still ends us
    if os.getppid() == 1:
        os._exit(0)  # the mount died before the call above took effect


def _private_pipes() -> tuple[int, int]:
    """The request and answer pipes, moved off 0 and 1 so that nothing printed can corrupt them."""
    requests, answers = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    return requests, answers


class Helper:
    """Serves requests by priority, item by item: a Push is as many items as it has objects, so
    an urgent request sent meanwhile is served after the current object, not the whole batch."""

    def __init__(self, store, requests: int, answers: int, device: int = -1):
        self.store = store
        self._in = hp.FrameReader(requests)
        self._out = answers
        self._device = device  # the FUSE session (-1: none), to push read-ahead into the page cache
        self._pending: list = []  # heap of (lane, seq, item index, request)
        self._claimed: set[tuple[int, int]] = set()  # (seq, index) a reader waits for: sent, not pushed
        self._pushes: dict[int, list] = {}  # Push seq -> [items left, indexes pushed]
        self._reader_at: dict[int, int] = {}  # listing -> the furthest position a reader asked for
        self._generation = 0
        self._trimmed = False  # whether the memory was given back since the last request

    def run(self) -> None:
        while True:
            if not self._pending:
                if not self._trimmed:
                    self._idle()
                self._take(*self._in.read())
                self._trimmed = False
            self._drain()
            if self._pending:  # a Bump alone leaves nothing to serve
                _, _, index, request = heapq.heappop(self._pending)
                self._serve(request, index)

    def _idle(self) -> None:
        """Nothing to do: after IDLE_AFTER without a request, the helper gives back its delta
        bases and its free memory (a helper that read through a walk held 80-90 MB after it)."""
        if self._in.buffered() or select.select([self._in.fd], [], [], IDLE_AFTER)[0]:
            return
        self.store.release_memory()
        memory.give_back()
        self._trimmed = True  # once an idle spell: until the next request, there is nothing more

    def _drain(self) -> None:
        """Takes in every request already sent, so that the most urgent is served next."""
        while self._in.buffered() or select.select([self._in.fd], [], [], 0)[0]:
            self._take(*self._in.read())

    def _take(self, message, payload) -> None:
        if type(message) is hp.Bump:
            self._claimed.add((message.seq, message.index))
            self._reader_is_at(message.where)
            for k, (lane, seq, index, request) in enumerate(self._pending):
                if seq == message.seq and index == message.index:
                    self._pending[k] = (hp.URGENT, seq, index, request)
                    heapq.heapify(self._pending)
                    break
            return
        if type(message) is not hp.Request:
            raise hp.HelperGone(f"unexpected {type(message).__name__}")
        job = message.job
        if type(job) is hp.Push:
            self._pushes[message.seq] = [len(job.items), []]
            for k in range(len(job.items)):
                heapq.heappush(self._pending, (message.lane, message.seq, k, message))
            if not job.items:
                self._pushes.pop(message.seq)
                hp.write_frame(self._out, hp.PushDone(message.seq, ()))
            return
        if message.lane == hp.URGENT and type(job) is hp.Load:
            self._reader_is_at(job.where)
        heapq.heappush(self._pending, (message.lane, message.seq, -1, message))

    def _reader_is_at(self, where: hp.ReaderAt) -> None:
        listing, position = where
        if position >= 0 and position > self._reader_at.get(listing, -1):
            self._reader_at[listing] = position

    def _near_reader(self, where: hp.ReaderAt) -> bool:
        """Whether a reader may be reading this object now or next: its READ would hold the pages
        a push must write, and wait for this helper, which waits for the READ."""
        listing, position = where
        return position <= self._reader_at.get(listing, -1) + NEAR_READER

    def _serve(self, request: hp.Request, index: int) -> None:
        if request.generation > self._generation:
            # The mount saw the repository change: so must this copy of the store, or it would
            # go on serving objects that git has pruned.
            self.store.refresh()
            self._generation = request.generation
        if type(request.job) is hp.Push:
            self._push_item(request, index)
            return
        hp.write_frame(self._out, *next(answers(self.store, request)))

    def _push_item(self, request: hp.Request, k: int) -> None:
        oid, inode, size, where = request.job.items[k]
        header, payload = load(self.store, request.seq, k, oid, request.job.max_size, size)
        if payload and self._device >= 0:
            # A reader may have claimed it while it was inflated: its READ then holds the pages
            # a push would wait for, and it wants the bytes. Look just before pushing.
            self._drain()
            claimed = (request.seq, k) in self._claimed
            if not claimed and not self._near_reader(where):
                hp.write_frame(self._out, hp.Pushing(request.seq, k))
                if self._pushed(inode, payload):
                    header = None
        self._claimed.discard((request.seq, k))
        state = self._pushes[request.seq]
        if header is None:
            state[1].append(k)
        else:
            hp.write_frame(self._out, header, payload)
        state[0] -= 1
        if not state[0]:
            del self._pushes[request.seq]
            hp.write_frame(self._out, hp.PushDone(request.seq, tuple(state[1])))

    def _pushed(self, inode: int, data) -> bool:
        # A request claimed while this push waits on a page that the reader's READ holds: the
        # mount does not wait for this answer for long (it reads the object itself), and the
        # push goes on once that READ is answered.
        try:
            fuse_notify.store(self._device, inode, data)
            return True
        except OSError:
            return False  # the kernel does not know the inode (yet): the mount keeps the bytes


def main() -> None:
    _die_with_parent()
    # The mount handles signals; a ^C in its terminal must not kill us before it unmounts.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    requests, answers = _private_pipes()
    root = logging.getLogger()
    root.handlers[:] = [_ForwardLogs(answers)]
    root.setLevel(logging.INFO)
    try:
        memory.bound_allocator()
        config, _ = hp.FrameReader(requests).read()
        for real in config.refused:  # already resolved: the mount is live, so no look at it
            refused_paths.refuse_real(real)
        store = odb.open(config.repository, verify=config.verify, cache_size=config.cache_size)
        hp.write_frame(answers, hp.Ready(os.getpid()))
        Helper(store, requests, answers, config.device).run()
    except (hp.HelperGone, KeyboardInterrupt):
        pass  # the mount is gone or closed our pipe
    except odb.OdbError as e:  # the repository was deleted: the mount says so where it reads
        logging.getLogger("gitfs").warning("helper process %d stops: %s", os.getpid(), e)
    except Exception:  # a bug, or the repository vanished: the mount redoes our work itself
        logging.getLogger("gitfs").exception("helper process %d failed", os.getpid())
    os._exit(0)
