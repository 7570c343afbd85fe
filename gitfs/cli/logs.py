"""Where the mount's log lines go, and how often one warning may repeat there.

In the foreground: stderr. Detached: the file $GITFS_LOG_FILE names if it is set, else syslog
(/dev/log, which journald also serves) when it answers, otherwise the file default_log_file()
names. --log-file overrides all of them. (The tests set GITFS_LOG_FILE, so that their mounts
never write to the machine's log.) The
destination is chosen and checked before anything is mounted, so that a log that cannot be
written is refused with one line instead of being lost.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import socket
import stat
import sys
import time
from typing import NamedTuple

from odb.lru import LRU

from gitfs import __version__

SYSLOG_SOCKET = "/dev/log"
LOG_FILE_VARIABLE = "GITFS_LOG_FILE"  # a detached mount's log file when --log-file is not given
FILE_FORMAT = "%(asctime)s gitfs[%(process)d] %(levelname)s %(message)s"
SYSLOG_FORMAT = "gitfs[%(process)d]: %(levelname)s %(message)s"


class LogError(Exception):
    """The log destination cannot be used; the message is the one line the user sees."""


class Destination(NamedTuple):
    kind: str  # "stderr", "file" or "syslog"
    path: str | None = None
    stream: object = None  # the open file, or the syslog handler


def default_log_file() -> str:
    """/var/log/gitfs/gitfs.log for root, else $XDG_STATE_HOME/gitfs/gitfs.log
    ($XDG_STATE_HOME defaults to ~/.local/state)."""
    if os.geteuid() == 0:
        return "/var/log/gitfs/gitfs.log"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "gitfs", "gitfs.log")


def choose(log_file: str | None, *, detached: bool) -> Destination:
    """Where this mount logs; LogError if that place cannot take log lines."""
    if log_file:
        path = os.path.abspath(log_file)  # the daemon leaves its working directory
        return Destination("file", path, open_log_file(path))
    if not detached:
        return Destination("stderr")
    if os.environ.get(LOG_FILE_VARIABLE):
        path = os.path.abspath(os.environ[LOG_FILE_VARIABLE])
        return Destination("file", path, open_log_file(path))
    syslog = _connect_syslog()
    if syslog is not None:
        return Destination("syslog", SYSLOG_SOCKET, syslog)
    path = default_log_file()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError as e:
        raise LogError(f"no syslog at {SYSLOG_SOCKET}, and cannot create {os.path.dirname(path)} for the log: "
                       f"{e.strerror}; name a log file with --log-file") from None
    return Destination("file", path, open_log_file(path))


def _connect_syslog():
    # SysLogHandler swallows a failed connect and then drops every line: try it here first.
    try:
        if not stat.S_ISSOCK(os.stat(SYSLOG_SOCKET).st_mode):
            return None
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(SYSLOG_SOCKET)
        return logging.handlers.SysLogHandler(SYSLOG_SOCKET)
    except OSError:
        return None  # absent, or nobody listening


def open_log_file(path: str):
    """The file opened for appending, refused unless it is a regular file that takes a write.

    Opened non-blocking, so that a FIFO without a reader cannot hang the command, and checked
    after opening (no race with a swap); the first line is written at once, so that a full
    disk or a device like /dev/full is refused now rather than losing every later line.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LogError(f"cannot write the log file {path}: {e.strerror}") from None
    else:
        if not stat.S_ISREG(st.st_mode):
            raise LogError(f"cannot write the log file {path}: not a regular file")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o640)
    except OSError as e:
        reason = "not a regular file" if e.errno == errno.ENXIO else e.strerror  # ENXIO: a FIFO
        raise LogError(f"cannot write the log file {path}: {reason}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LogError(f"cannot write the log file {path}: not a regular file")
        os.set_blocking(fd, True)
        first = logging.Formatter(FILE_FORMAT).format(logging.LogRecord(
            "gitfs", logging.INFO, __file__, 0, "gitfs %s starting", (__version__,), None))
        os.write(fd, (first + "\n").encode())  # unbuffered: the error, if any, comes now
    except OSError as e:
        os.close(fd)
        raise LogError(f"cannot write the log file {path}: {e.strerror}") from None
    except LogError:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


def describe(dest: Destination) -> str:
    return {"stderr": "standard error", "syslog": f"syslog ({SYSLOG_SOCKET})"}.get(dest.kind, dest.path)


def setup_logging(dest: Destination, *, debug: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if dest.kind == "syslog":
        handler = dest.stream
        handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr if dest.kind == "stderr" else dest.stream)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.addFilter(REPEATS)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    from gitfs.fuse import fuse_errors  # the FUSE side, here: `gitfs status` and the rest never load pyfuse3
    fuse_errors.trace_requests(debug)
    if not debug:
        logging.getLogger("pyfuse3").setLevel(logging.WARNING)


def flush_repeats(*, everything: bool = False) -> None:
    """Writes the counts of warnings held back whose window has passed (all of them at exit)."""
    for record in REPEATS.due(everything=everything):
        logging.getLogger(record.name).handle(record)


# -- rate limiting ---------------------------------------------------------------------


class RepeatFilter(logging.Filter):
    """Lets the first warning of each cause through, then counts its repeats.

    A cause is a logger, a level and the exact message. Within WINDOW seconds of its first line,
    the same cause is only counted; the next line after the window (or flush at the latest)
    says how many were held back. At most NEW_CAUSES_PER_WINDOW different causes get a line of
    their own per window, so that many different failing names cannot flood the log either;
    the rest are counted together. Below WARNING nothing is held back: -d asked for every line.
    """

    WINDOW = 60.0
    NEW_CAUSES_PER_WINDOW = 100
    MAX_CAUSES = 1024

    def __init__(self, clock=time.monotonic):
        super().__init__()
        self._clock = clock
        self._causes: LRU[tuple, list] = LRU(max_items=self.MAX_CAUSES)  # -> [since, held]
        self._window_start = clock()
        self._new_in_window = 0
        self._others = 0  # held back because too many causes were new in this window

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "gitfs_summary", False):
            return True
        now = self._clock()
        if now - self._window_start >= self.WINDOW:
            self._window_start, self._new_in_window = now, 0
        key = (record.name, record.levelno, record.getMessage())
        cause = self._causes.peek(key)
        if cause is not None and now - cause[0] < self.WINDOW:
            cause[1] += 1
            return False
        if cause is None and self._new_in_window >= self.NEW_CAUSES_PER_WINDOW:
            self._others += 1
            return False
        if cause is None:
            self._new_in_window += 1
        elif cause[1]:
            record.msg, record.args = f"{key[2]} (and {cause[1]} more times before this)", ()
        self._causes.put(key, [now, 0])
        return True

    def due(self, *, everything: bool = False) -> list[logging.LogRecord]:
        """Summary records for causes whose window is over and that were repeated."""
        now = self._clock()
        out = []
        for (name, level, message), cause in self._causes.items():
            if cause[1] and (everything or now - cause[0] >= self.WINDOW):
                out.append(_summary(name, level, f"{message} (repeated {cause[1]} more times "
                                                 f"in {now - cause[0]:.0f} s)"))
                cause[1] = 0
        if self._others and (everything or now - self._window_start >= self.WINDOW):
            out.append(_summary("gitfs", logging.WARNING,
                                f"{self._others} more warnings held back (over {self.NEW_CAUSES_PER_WINDOW} "
                                f"different warnings in {self.WINDOW:.0f} s)"))
            self._others = 0
        return out


def _summary(name: str, level: int, message: str) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 0, "%s", (message,), None)
    record.gitfs_summary = True
    return record


REPEATS = RepeatFilter()
