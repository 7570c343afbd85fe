"""Helpers for the command-line tests: one-line errors, the mount's processes, a second user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mounting import ENV, gitfs_argv, mounted, wait_until

NOBODY = 65534


def one_line_error(done, code: int | None = None) -> str:
    """The single stderr line of a failed command (no traceback, nothing on stdout)."""
    assert done.returncode != 0, done
    if code is not None:
        assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gitfs"), lines[0]
    return lines[0]


def mount_status(path: Path) -> dict:
    """What the mount says about itself (user.gitfs.status on its root)."""
    return json.loads(os.getxattr(path, "user.gitfs.status"))


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ps_lines(pids) -> str:
    """What ps says about these processes (for an assertion message)."""
    pids = list(pids)
    if not pids:
        return ""
    return subprocess.run(["ps", "-o", "pid,ppid,stat,args", "-p", ",".join(map(str, pids))],
                          capture_output=True, text=True).stdout


def as_user(uid: int, argv: list[str]) -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a command as a second user")
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]


def run_as(uid: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(as_user(uid, gitfs_argv(*args)), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=ENV, cwd="/")


def force_unmount(path: Path) -> None:
    """Cleanup after a test that may have left a dead or busy mount."""
    if mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)
        wait_until(lambda: not mounted(path))
