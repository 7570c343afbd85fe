"""`gitfs status`: each mount probed in a child process with a deadline, so that a hung mount is
reported as such instead of hanging the command, and the table or JSON it prints.

A mount describes itself in its root's user.gitfs.status attribute (gitfs/view/status.py).
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import time
from typing import NamedTuple

from gitfs.cli import mountinfo
from gitfs.view.status import XATTR

PROBE_SECONDS = 1.0

UNKNOWN = "unknown (this user may not look inside)"


class MountStatus(NamedTuple):
    mount: mountinfo.Mount
    health: str  # "healthy", "dead", "not responding", UNKNOWN or "error: ..."
    facts: dict  # what the mount said about itself; empty when it could not say


def fine(states: list[MountStatus]) -> bool:
    """Nothing wrong was seen: each mount answered, or this user may not ask it."""
    return all(s.health in ("healthy", UNKNOWN) for s in states)


def probe_all(mounts: list[mountinfo.Mount], timeout: float = PROBE_SECONDS) -> list[MountStatus]:
    """Each mount stat'ed, and its status attribute read, by a child process of its own; all
    children run at once, and one that has not answered by the deadline is abandoned."""
    children = [_start_probe(m.mountpoint) for m in mounts]
    answers = _collect(children, time.monotonic() + timeout)
    return [MountStatus(m, *_judge(answers.get(pid))) for m, (pid, _) in zip(mounts, children)]


def _start_probe(path: str) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(_probe(path)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _probe(path: str) -> dict:
    # The kernel may answer a stat from its attribute cache, even for a mount whose process is
    # gone; extended attributes are never cached, so reading one is a round trip to the daemon.
    try:
        os.stat(path)
        value = os.getxattr(path, XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return {}  # it answered: an older gitfs without the attribute; facts unknown
        return {"errno": e.errno}
    try:
        return {"facts": json.loads(value)}
    except ValueError:
        return {}  # an attribute that says nothing usable: facts unknown


def _collect(children: list[tuple[int, int]], deadline: float) -> dict[int, dict]:
    answers: dict[int, dict] = {}
    pending = {fd: pid for pid, fd in children}
    chunks: dict[int, bytes] = {fd: b"" for fd in pending}
    while pending and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(pending), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                chunks[fd] += chunk
                continue
            pid = pending.pop(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            try:
                answers[pid] = json.loads(chunks[fd])
            except ValueError:
                answers[pid] = {"errno": errno.EIO}
    for fd, pid in pending.items():  # stuck in the mount: never waited for
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass
    return answers


def _judge(answer: dict | None) -> tuple[str, dict]:
    if answer is None:
        return "not responding", {}
    code = answer.get("errno")
    # ENOTCONN: the daemon is gone. ECONNABORTED: it died while this probe's request was queued
    # (its helpers, which hold the session too, went a moment later).
    if code in (errno.ENOTCONN, errno.ECONNABORTED):
        return "dead", {}
    if code in (errno.EACCES, errno.EPERM):
        # Without allow_other, FUSE lets nobody but the mounting user in, not even for a stat.
        return UNKNOWN, {}
    if code is not None:
        return f"error: {os.strerror(code)}", {}
    facts = answer.get("facts")
    if not isinstance(facts, dict):
        return "healthy", {}
    now = facts.get("repository_now")
    if isinstance(now, dict) and now.get("gone"):
        return f"repository gone: {now['gone']}", facts
    return "healthy", facts


# -- how a status is shown --------------------------------------------------------------


COLUMNS = ("MOUNTPOINT", "REPOSITORY", "PID", "UPTIME", "CACHE", "HEALTH")


def row(status: MountStatus, now: float) -> tuple[str, ...]:
    facts = status.facts
    started = facts.get("started")
    cache = facts.get("cache") if isinstance(facts.get("cache"), dict) else {}
    health = status.health
    if health == "dead":
        health = f"dead (run gitfs umount {status.mount.mountpoint})"
    return (status.mount.mountpoint, status.mount.source,
            str(facts["pid"]) if isinstance(facts.get("pid"), int) else "-",
            duration(now - started) if isinstance(started, (int, float)) else "-",
            (f"{size(cache['bytes'])}/{size(cache['limit'])}"
             if isinstance(cache.get("bytes"), int) and isinstance(cache.get("limit"), int) else "-"),
            health)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [COLUMNS, *rows])


def as_json(status: MountStatus) -> dict:
    return {"mountpoint": status.mount.mountpoint, "repository": status.mount.source,
            "health": status.health, **{k: v for k, v in status.facts.items()
                                        if k not in ("mountpoint", "repository")}}


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h03m, 6d04h."""
    s = max(0, int(seconds))
    for unit, size_, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size_:
            return f"{s // size_}{unit}{(s % size_) // sub_size:02d}{sub}"
    return f"{s}s"


def size(n: int) -> str:
    """Binary units, as --cache-size takes them: 0, 512K, 12M, 1.5G."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.1f}{unit}" if value < 10 and n % (1 << shift) else f"{value:.0f}{unit}"
    return str(n)
