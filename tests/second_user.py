"""Running a little Python as another user: permission tests need one, since CI runs as root and root
passes every permission check."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    name: str | None = None  # known to the user database: its groups come from there

    def argv(self) -> list[str]:
        ids = [f"--reuid={self.uid}", f"--regid={self.gid}"]
        return ["setpriv", *ids, "--init-groups" if self.name else "--clear-groups"]

    def groups(self) -> set[int]:
        if self.name is None:
            return {self.gid}
        return set(os.getgrouplist(self.name, self.gid))


NOBODY = User(65534, 65534, "nobody")
DAEMON = User(1, 1, "daemon")
SYNC = User(4, 65534, "sync")  # Debian's sync: a member of nobody's group (nogroup)
STRANGER = User(4242, 4242)  # no entry in the user database


def run_as(user: User, code: str, *args: str, timeout: float = 60):
    """Runs code (which gets sys.argv and may print one JSON value) as user; the value it printed."""
    prelude = f"import sys, json; sys.path.insert(0, {str(ROOT)!r})\n"
    proc = subprocess.run([*user.argv(), sys.executable, "-c", prelude + code, *args], capture_output=True,
                          text=True, timeout=timeout, cwd="/")
    if proc.returncode != 0:
        raise AssertionError(f"as uid {user.uid}: exit {proc.returncode}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


@contextlib.contextmanager
def shared_directory():
    """A fresh directory that every user can search (pytest's tmp_path is root's own, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="gitfs-users-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def allowed(user: User, uid: int, gid: int, mode: int, need: int) -> bool:
    """What the kernel's permission check (default_permissions) answers for user on a file of
    this owner, group and mode; need is 4 (read), 1 (search) or 5 (list)."""
    if user.uid == 0:
        return True
    if user.uid == uid:
        bits = mode >> 6
    elif gid in user.groups():
        bits = mode >> 3
    else:
        bits = mode
    return bits & need == need


def own(top: Path, uid: int, gid: int, file_mode: int, dir_mode: int) -> None:
    """Gives top and everything below it this owner, group and modes."""
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, uid, gid)
        path.chmod(dir_mode if path.is_dir() else file_mode)
