"""A helper process: inflates objects and reads sizes for the mount, so odb's work runs beside the loop.

Threads of one process take turns under the GIL: odb's Python code in a thread of the mount
would stall the FUSE loop. The mount starts helpers as fresh interpreters
(`python -c "from gitfs.helper import main; main()"`), never by forking its threaded self, so a
helper holds no FUSE descriptor and no lock some other thread held. It reads requests on stdin and
answers on stdout (gitfs/helper_protocol.py), serving the most urgent request it holds first: an
urgent read sent while it works through read-ahead is answered next. It exits when the mount closes
the pipe, or dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import os
import select
import signal
from array import array

import odb
from odb import refused_paths

from . import helper_protocol as hp

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
    def __init__(self, store, requests: int, answers: int):
        self.store = store
        self._in = requests
        self._out = answers
        self._pending: list = []  # heap of (lane, seq, request)
        self._generation = 0

    def run(self) -> None:
        while True:
            if not self._pending:
                self._take(*hp.read_frame(self._in))
            while select.select([self._in], [], [], 0)[0]:
                self._take(*hp.read_frame(self._in))
            if self._pending:  # a Bump alone leaves nothing to serve
                self._serve(heapq.heappop(self._pending)[2])

    def _take(self, message, payload) -> None:
        if type(message) is hp.Bump:
            for k, (lane, seq, request) in enumerate(self._pending):
                if seq == message.seq:
                    self._pending[k] = (hp.URGENT, seq, request)
                    heapq.heapify(self._pending)
                    break
            return
        if type(message) is not hp.Request:
            raise hp.HelperGone(f"unexpected {type(message).__name__}")
        heapq.heappush(self._pending, (message.lane, message.seq, message))

    def _serve(self, request: hp.Request) -> None:
        if request.generation > self._generation:
            # The mount saw the repository change: so must this copy of the store, or it would
            # go on serving objects that git has pruned.
            self.store.refresh()
            self._generation = request.generation
        header, payload = answer(self.store, request)
        hp.write_frame(self._out, header, payload)


def answer(store, request: hp.Request) -> tuple[object, bytes]:
    """(header, payload) answering one request: what a helper sends, and what the mount computes
    itself when it has no helper."""
    job = request.job
    if type(job) is hp.Load:
        try:
            if store.read_size(job.oid) > job.max_size:
                return hp.Loaded(request.seq, too_big=True), b""
            return hp.Loaded(request.seq), store.read(job.oid)[1]
        except Exception as e:  # carried whole to the reader, who gets it as errno
            return hp.Loaded(request.seq, error=_carried(e)), b""
    sizes, errors = read_sizes(store, job.ids)
    return hp.SizesRead(request.seq, errors), sizes.tobytes()


def read_sizes(store, ids: bytes) -> tuple[array, dict]:
    n = store.format.raw_len
    sizes = array("q")
    errors = {}
    read_size = store.read_size
    for k, i in enumerate(range(0, len(ids), n)):
        try:
            sizes.append(read_size(ids[i : i + n]))
        except Exception as e:
            sizes.append(-1)
            errors[k] = _carried(e)
    return sizes, errors


def _carried(error: Exception) -> Exception:
    """odb's errors pickle whole; anything else (a bug) travels as an OdbError naming it."""
    if isinstance(error, (odb.OdbError, OSError)):
        return error
    return odb.OdbError(f"{type(error).__name__}: {error}")


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
        config, _ = hp.read_frame(requests)
        for path in config.refused:
            refused_paths.refuse(path)
        store = odb.open(config.repository, verify=config.verify)
        hp.write_frame(answers, hp.Ready(os.getpid()))
        Helper(store, requests, answers).run()
    except (hp.HelperGone, KeyboardInterrupt):
        pass  # the mount is gone or closed our pipe
    except Exception:  # a bug, or the repository vanished: the mount redoes our work itself
        logging.getLogger("gitfs").exception("helper process %d failed", os.getpid())
    os._exit(0)
