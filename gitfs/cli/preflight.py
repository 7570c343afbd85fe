"""What `gitfs mount` checks before it mounts anything; each refusal is one line (UsageError)."""

from __future__ import annotations

import errno
import os
import shutil
import stat

import odb

from gitfs.cli import mountinfo
from gitfs.cli import probe


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line."""


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise UsageError("/dev/fuse is missing: this machine (or container) cannot do FUSE "
                         "(load the fuse module, or run the container with --device /dev/fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise UsageError("/dev/fuse is not accessible to this user")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        raise UsageError("fusermount3 not found (install the fuse3 package)")


def check_mountpoint(path: str) -> None:
    """What no option lifts; check_empty, which -o nonempty lifts, comes after every such check,
    so that following its advice never ends in another refusal."""
    check_not_mounted(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"mountpoint {path} does not exist") from None
    except PermissionError:
        raise UsageError(f"mountpoint {path}: permission denied") from None
    except OSError as e:
        if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            raise UsageError(dead_mount_advice(path)) from None
        raise UsageError(f"mountpoint {path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise UsageError(f"mountpoint {path} is already a mount point")
    if os.geteuid() != 0 and not os.access(path, os.W_OK):
        # fusermount3 mounts only where the user may write.
        raise UsageError(f"mountpoint {path}: permission denied (you need write access to it)")


def check_empty(path: str) -> None:
    try:
        with os.scandir(path) as entries:
            if next(entries, None) is not None:
                raise UsageError(f"mountpoint {path} is not empty (the mount would hide its files; "
                                 "-o nonempty mounts over it anyway)")
    except PermissionError:
        raise UsageError(f"mountpoint {path}: permission denied") from None


def check_not_mounted(path: str) -> None:
    """A mount point already in the mount table is refused; one whose FUSE process is gone gets
    the command that removes it (a stat would not tell: the kernel may answer it from its cache)."""
    mount = mountinfo.mount_at(path)
    if mount is None:
        return
    if mount.is_fuse and probe.probe_all([mount])[0].health == "dead":
        raise UsageError(dead_mount_advice(path))
    raise UsageError(f"mountpoint {path} is already a mount point")


def dead_mount_advice(path: str) -> str:
    """What to run for a path on a dead FUSE mount, which may be the path or an ancestor."""
    dead = mountinfo.mount_containing(path)
    if dead is None or not dead.is_fuse:
        return f"mountpoint {path}: transport endpoint is not connected"
    command = ("gitfs umount" if dead.fstype == mountinfo.GITFS_TYPE else "fusermount3 -u") + f" {dead.mountpoint}"
    if dead.mountpoint == mountinfo.lexical(path):
        return f"mountpoint {path} is a dead FUSE mount (its process is gone); run: {command}"
    return f"mountpoint {path} is inside the dead FUSE mount {dead.mountpoint} (its process is gone); run: {command}"


def check_not_self_reference(store, mountpoint: str) -> None:
    """A mount point the store would read through, or one above such a directory, would make the
    mount read itself: the first lookup would hang, and its readers with it.

    Anywhere inside the repository's own git dir or objects directory is refused. Inside an
    alternate's objects directory only what the store reads there is (pack/, info/ and the
    two-digit buckets): git accepts any directory as an alternate, "/" included, and a mount
    point elsewhere below it is never read.
    """
    own = {os.path.realpath(d) for d in (store.git_dir, store.objects_dir) if d}
    for directory in store.directories():
        if mountinfo.is_within(directory, mountpoint):
            raise UsageError(f"mountpoint {mountpoint} contains {directory}, which the mount reads "
                             "(it would read itself); choose a mount point outside the repository")
        if mountinfo.is_within(mountpoint, directory) and (directory in own or _read_below(directory, mountpoint)):
            raise UsageError(f"mountpoint {mountpoint} is inside {directory}, which the mount reads "
                             "(it would read itself); choose a mount point outside the repository")


def _read_below(objects_dir: str, path: str) -> bool:
    """path is an objects directory itself, or in a part of it the store reads."""
    first = os.path.relpath(path, objects_dir).split("/")[0]
    return first in (".", "pack", "info") or (len(first) == 2 and all(c in "0123456789abcdef" for c in first))


def open_store(repo: str, verify: bool, cache_size: int = odb.store.DEFAULT_CACHE_SIZE):
    try:
        return odb.open(repo, verify=verify, cache_size=cache_size)
    except odb.AccessDenied as e:
        raise UsageError(str(e)) from None  # "PATH: permission denied"
    except odb.NotARepository as e:
        raise UsageError(str(e)) from None  # odb's message already names the path and the reason
    except odb.OdbError as e:
        raise UsageError(f"{repo}: {e}") from None
    except PermissionError:
        raise UsageError(f"{repo}: permission denied") from None
    except OSError as e:
        raise UsageError(f"{repo}: {e.strerror}") from None


def check_repository_readable(repo: str) -> None:
    """A repository directory this user may not list reads as "not a git repository" to odb's
    probes; say what it is. (odb raises AccessDenied for what lies below it.)"""
    if os.path.isdir(repo) and not os.access(repo, os.R_OK | os.X_OK, effective_ids=True):
        raise UsageError(f"{repo}: permission denied")
