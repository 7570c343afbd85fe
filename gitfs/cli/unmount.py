"""`gitfs umount`: unmount gitfs mounts only, and say in one line why one cannot be."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from gitfs.cli import mountinfo


# Seconds an unmount is tried again while only FUSE daemons hold the mount: a walk's listing of
# 256 buckets of git.git through the mount takes 4-6 s. Not measured otherwise.
DAEMON_LISTING_WAIT = 10.0
# Seconds in a row of "busy" with no holder in sight after which it is not the daemon's listing
# (whose directories are open for milliseconds at a time, one after the other) but a holder this
# user cannot see. Not measured.
UNSEEN_WAIT = 1.0


class UnmountError(Exception):
    """Why one mount point was not unmounted: the one line the user sees."""


def unmount(path: str, *, lazy: bool = False) -> None:
    """Unmounts the gitfs mount at path (detaching it at once if lazy); UnmountError if not."""
    table = mountinfo.mounts()
    mount = mountinfo.mount_at(path, table)
    if mount is None:
        if not os.path.lexists(path):
            raise UnmountError(f"cannot unmount {path}: no such file or directory")
        around = mountinfo.mount_containing(path, table)
        where = (f" (it is inside the gitfs mount {around.mountpoint})"
                 if around is not None and around.fstype == mountinfo.GITFS_TYPE else "")
        raise UnmountError(f"cannot unmount {path}: not mounted{where}")
    if mount.fstype != mountinfo.GITFS_TYPE:
        raise UnmountError(f"cannot unmount {path}: not a gitfs mount ({mount.fstype}); "
                           "gitfs unmounts only its own mounts")
    reason = _run_unmount(mount.mountpoint, lazy)
    # A mount serving a walk in pack order lists buckets through itself for a few seconds
    # (gitfs/engine/pack_walk.py): busy only because of FUSE daemons' own listings, it is
    # asked again until they are done.
    deadline = time.monotonic() + DAEMON_LISTING_WAIT
    unseen_since = None
    while reason is not None and "busy" in reason.lower() and time.monotonic() < deadline:
        users = users_of(mount.mountpoint)
        if not all(_serves_fuse(pid) for pid in users):
            break
        if users:
            unseen_since = None
        elif unseen_since is None:
            unseen_since = time.monotonic()  # between two of the listing's directories, most often
        elif time.monotonic() - unseen_since > UNSEEN_WAIT:
            break
        time.sleep(0.05)
        reason = _run_unmount(mount.mountpoint, lazy)
    if reason is None:
        return
    if "busy" in reason.lower():
        raise UnmountError(f"cannot unmount {path}: busy, {describe_users(users_of(mount.mountpoint))}; "
                           f"close them, or detach it now with gitfs umount -z {path}")
    raise UnmountError(f"cannot unmount {path}: {reason}")


def _run_unmount(mountpoint: str, lazy: bool) -> str | None:
    """None once unmounted, else the reason fusermount3 (or umount, for root) gave."""
    if shutil.which("fusermount3"):
        command = ["fusermount3", "-u", *(["-z"] if lazy else []), mountpoint]
    elif os.geteuid() == 0 and shutil.which("umount"):
        command = ["umount", *(["-l"] if lazy else []), mountpoint]
    else:
        return "fusermount3 not found (install the fuse3 package)"
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or ["failed"])[-1]
    # "fusermount3: failed to unmount /mnt: Device or resource busy": the reason is the last part.
    return last.rsplit(": ", 1)[-1]


def users_of(mountpoint: str) -> dict[int, str]:
    """pid -> command name of each process whose working directory, root, executable, open files
    or mapped files lie on the mount. Only links are read (readlink), never stat'ed: stat'ing
    into a hung mount would block here too."""
    users = {}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        if any(mountinfo.is_within(p, mountpoint) for p in _paths_held(entry.path)):
            users[int(entry.name)] = _command_name(entry.path)
    return users


def _paths_held(proc_dir: str):
    for link in ("cwd", "root", "exe"):
        yield _readlink(os.path.join(proc_dir, link))
    try:
        fds = os.listdir(os.path.join(proc_dir, "fd"))
    except OSError:
        fds = []  # gone, or another user's process
    for fd in fds:
        yield _readlink(os.path.join(proc_dir, "fd", fd))
    try:
        with open(os.path.join(proc_dir, "maps"), "rb") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith(b"/"):
                    yield os.fsdecode(fields[5].rstrip(b"\n"))
    except OSError:
        pass


def _serves_fuse(pid: int) -> bool:
    """Whether the process holds /dev/fuse open: a FUSE daemon (such as the mount's own)."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    return any(_readlink(os.path.join(fd_dir, fd)) == "/dev/fuse" for fd in fds)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _command_name(proc_dir: str) -> str:
    try:
        with open(os.path.join(proc_dir, "comm"), "rb") as f:
            return os.fsdecode(f.read().strip())
    except OSError:
        return "?"


def describe_users(users: dict[int, str], shown: int = 5) -> str:
    """'used by 2 processes (less 812, bash 77)'."""
    if not users:
        return "though no process visible to this user holds a file on it"
    names = ", ".join(f"{name} {pid}" for pid, name in sorted(users.items())[:shown])
    more = ", ..." if len(users) > shown else ""
    noun = "process" if len(users) == 1 else "processes"
    return f"used by {len(users)} {noun} ({names}{more})"
