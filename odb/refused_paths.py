"""Directories odb must never enter (a mount of the repository itself), and paths resolved without entering them.

A process that serves a FUSE mount and then looks up a path inside that mount waits on itself:
the kernel hands the request to the loop that is blocked on it, and every reader of the mount
hangs in D state. Even a stat() is enough. So once refuse() has named the mount point (the daemon
calls it before mounting; its helper processes start later and are handed the real paths it took,
through refuse_real(), which looks nothing up), a path is never followed into a refused directory,
and nothing at or below one is ever looked at.

What keeps the hot path at one system call:
- every repository file is opened with O_NOFOLLOW, so a symlink in the last component is met as
  ELOOP, and only then resolved here, component by component, before it is followed;
- the directories above those files (objects directories, pack/, the loose buckets) are checked
  by their owners: store.py when it refuses and at every refresh, objects/loose.py per bucket.

Refusal is for the whole process, on purpose: nothing in a mount's daemon may read the mount.
"""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS

_refused: frozenset[str] = frozenset()
_prefixes: tuple[str, ...] = ()


class SelfReference(OSError):
    """A repository path leads into a refused directory (the mount itself)."""

    def __init__(self, path):
        super().__init__(errno.ELOOP, "resolves into the mount itself", path)


def refuse(path) -> str:
    """From now on, nothing at or below path is entered. Call before mounting on path: its real
    path is taken now, while looking at it is still harmless. Returns that real path."""
    global _refused, _prefixes
    real = os.path.realpath(os.fsdecode(path))
    _refused = _refused | {real}
    _prefixes = tuple(sorted(r.rstrip("/") + "/" for r in _refused))
    return real


def refuse_real(real: str) -> None:
    """refuse() for a path already resolved by another process (a helper, given the mount's
    refusals): nothing is looked up, since the mount may be live by now and a look at its
    root would wait for the loop that serves it, and keep the mount busy meanwhile."""
    global _refused, _prefixes
    if not real.startswith("/") or os.path.normpath(real) != real:
        raise ValueError(f"not a resolved absolute path: {real!r}")
    _refused = _refused | {real}
    _prefixes = tuple(sorted(r.rstrip("/") + "/" for r in _refused))


def refused() -> tuple[str, ...]:
    """The real paths refused so far, to hand to another process's refuse_real()."""
    return tuple(sorted(_refused))


def active() -> bool:
    return bool(_refused)


def inside(real: str) -> bool:
    """Whether a real (symlink-free, absolute) path is a refused directory or below one."""
    return real in _refused or real.startswith(_prefixes)


def resolve(path, trail: list | None = None) -> str:
    """os.path.realpath(path), except that no path at or below a refused directory is looked at:
    SelfReference instead. Components that do not exist are kept as written, as realpath does.

    `trail`, if given, receives every directory in which a component was looked up: the
    directories a process needs to search to reach path, symlink targets included.
    """
    path = os.fsdecode(path)
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    todo = [name for name in reversed(path.split("/")) if name]
    real = ""  # "" is "/": components are appended as "/name"
    hops = 0
    while todo:
        name = todo.pop()
        if name == ".":
            continue
        if trail is not None:
            trail.append(real or "/")
        if name == "..":
            real = real.rpartition("/")[0]
            continue
        candidate = real + "/" + name
        if inside(candidate):
            raise SelfReference(path)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            real = os.path.normpath("/".join([candidate, *reversed(todo)]))
            break
        if not stat.S_ISLNK(st.st_mode):
            real = candidate
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            real = ""
        todo.extend(name for name in reversed(target.split("/")) if name)
    real = real or "/"
    if inside(real):
        raise SelfReference(path)
    return real


def real_or_none(path) -> str | None:
    """The real path, or None if it leads into a refused directory."""
    try:
        return resolve(path)
    except SelfReference:
        return None


def open_nofollow(path, flags: int) -> int:
    """os.open(path, flags), following a symlink in the last component only once resolve()
    says where it leads (with no refusal in force: a plain open)."""
    if not _refused:
        return os.open(path, flags)
    try:
        return os.open(path, flags | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
    return os.open(resolve(path), flags | os.O_NOFOLLOW)


def stat_nofollow(path) -> os.stat_result:
    """os.stat(path), following a symlink in the last component only once resolve() says where
    it leads (with no refusal in force: a plain stat)."""
    if not _refused:
        return os.stat(path)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(resolve(path))
    return st
