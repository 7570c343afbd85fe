"""Helpers for tests that mount: run the gitfs command, watch /proc/mounts, compare with git."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from oracle import Git

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]
# The project need not be installed: the mount process finds it on PYTHONPATH
# (after anything the caller already put there).
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p))


def gitfs_argv(*args: str) -> list[str]:
    return [PYTHON, "-m", "gitfs", *args]


def run_gitfs(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(gitfs_argv(*args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=dict(ENV, **(env or {})))


def mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as f:
        return any(line.split()[1] == target for line in f)


def mount_line(path: Path) -> list[str] | None:
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path):
                return fields
    return None


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Mount:
    """A detached gitfs mount of a repository, as a user starts it."""

    def __init__(self, repo: Path, mountpoint: Path, log_file: Path, *extra: str, env: dict | None = None):
        self.repo = repo
        self.path = mountpoint
        self.log_file = log_file
        mountpoint.mkdir(parents=True, exist_ok=True)
        done = run_gitfs("mount", *extra, "--log-file", str(log_file), str(repo), str(mountpoint), env=env)
        if done.returncode != 0:
            raise RuntimeError(f"gitfs mount failed ({done.returncode}): {done.stderr.strip()}")
        assert mounted(mountpoint), "gitfs mount exited 0 but the mount is not live"

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def unmount(self) -> None:
        unmount(self.path)


def unmount(path: Path) -> None:
    """`gitfs umount path`, as a test's cleanup: a mount that will not go (busy, or a hung daemon)
    is aborted, then the test fails with gitfs's reason."""
    if not mounted(path):
        return
    try:
        done = run_gitfs("umount", str(path), timeout=30)
        gone = done.returncode == 0 and wait_until(lambda: not mounted(path))
        why = done.stderr.strip()
    except subprocess.TimeoutExpired:
        gone, why = False, "gitfs umount did not return within 30 s"
    if not gone:
        abort_connection(path)
        raise AssertionError(f"{path} did not unmount ({why}); its FUSE connection was aborted")


FUSECTL = Path("/sys/fs/fuse/connections")


def connection_of(path: Path) -> int | None:
    """The FUSE connection number of the mount at path (the minor of its device), or None."""
    # Only the parent is resolved: a stat of the mount point itself would ask the mount, which
    # may be the one that hangs.
    target = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target and fields[fields.index("-") + 1].startswith("fuse"):
                found = int(fields[2].split(":")[1])  # the last one mounted there
    return found


def abort_connection(path: Path) -> bool:
    """Aborts the FUSE connection of the mount at path (and nothing else), as
    `echo 1 > /sys/fs/fuse/connections/N/abort` does: every request waiting on it fails
    (ECONNABORTED, then ENOTCONN), so no process stays blocked. Then lazily unmounts it. True if it was aborted."""
    n = connection_of(path)
    if n is None:
        return False
    if not (FUSECTL / str(n)).exists():
        subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)], capture_output=True)
    aborted = False
    try:
        (FUSECTL / str(n) / "abort").write_text("1")
        aborted = True
    except OSError:
        pass
    subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, timeout=30)
    return aborted



def git_for(repo: Path) -> Git:
    git_dir = repo / ".git" if (repo / ".git").is_dir() else repo
    return Git(git_dir, repo if git_dir != repo else None)
