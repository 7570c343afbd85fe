"""The gitfs command line: parse arguments, set up logging, detach, run the FUSE loop."""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import shutil
import stat
import subprocess
import sys

import odb

from . import __version__
from .daemon import MountError, detach_and_serve, serve
from .logs import setup_logging

log = logging.getLogger("gitfs")

DESCRIPTION = """\
Mount a git repository's object database as a read-only filesystem.

The root lists the fanout buckets 00..ff that hold objects; each bucket lists
its objects by the remaining hex digits of their id; each file holds the
object's inflated bytes (no "blob 12\\0" header). Abbreviated names resolve
when unique, and extended attributes (getfattr -d) tell the type, the pack or
loose source, the pack offset and the delta base.
"""

EPILOG = """\
examples:
  gitfs mount ~/src/project /mnt/objs     mount (detaches once the mount is live)
  ls /mnt/objs/5a                         objects whose id starts with 5a
  cat /mnt/objs/5a/0bde                   an abbreviated id, if unique
  getfattr -d /mnt/objs/5a/0bde...        user.git.type, .source, .offset, .delta_base
  grep -rl TODO /mnt/objs                 search every object
  gitfs umount /mnt/objs                  unmount

/etc/fstab (mount.fuse3 runs `gitfs REPO MOUNTPOINT -o OPTS`; mount(8) looks for
gitfs on the system PATH, so link it there first, e.g.
ln -s /path/to/gitfs/.venv/bin/gitfs /usr/local/bin/gitfs):
  /srv/git/project.git  /mnt/objs  fuse.gitfs  ro,noauto,allow_other  0  0
then `mount /mnt/objs` and `umount /mnt/objs`.

Re-reading a directory (ls) refreshes the view: new objects, new packs, a
rewritten multi-pack-index and objects pruned by git gc all show.
"""

MOUNT_HELP_EPILOG = """\
The mount is always read-only. Options given with -o are passed to FUSE
(for example allow_other, which needs user_allow_other in /etc/fuse.conf for
non-root users); fsname=REPO, subtype=gitfs, ro and default_permissions are
always set, so `mount` shows the repository as a fuse.gitfs filesystem.
"""


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line."""


def parse_size(text: str) -> int:
    """'256M', '1G', '65536' -> bytes (binary units)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in units else ""
    number = t[: len(t) - len(unit)]
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256M or 1G)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitfs", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gitfs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    mount = commands.add_parser(
        "mount", help="mount REPO's objects on MOUNTPOINT",
        description="Mount REPO's object database on MOUNTPOINT, read-only.",
        epilog=MOUNT_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    mount.add_argument("repo", metavar="REPO",
                       help="a bare repository, a .git directory, a work tree, or an objects/ directory")
    mount.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing, empty directory")
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="stay in the foreground (logs go to stderr unless --log-file)")
    mount.add_argument("-d", "--debug", action="store_true", help="log every request (implies verbose logging)")
    mount.add_argument("--log-file", metavar="PATH", help="append log lines to PATH")
    mount.add_argument("--cache-size", metavar="SIZE", type=parse_size, default=256 << 20,
                       help="bytes of inflated objects kept in memory (default 256M)")
    mount.add_argument("--verify", action="store_true",
                       help="hash every object as it is read; a mismatch gives EIO")
    mount.add_argument("-o", dest="options", metavar="OPT[,OPT...]", action="append", default=[],
                       help="FUSE mount options, e.g. -o allow_other")

    umount = commands.add_parser("umount", help="unmount a gitfs mount",
                                 description="Unmount MOUNTPOINT (through fusermount3 -u).")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # mount.fuse3 (an fstab line) runs `gitfs REPO MOUNTPOINT -o OPTS`.
    if argv and not argv[0].startswith("-") and argv[0] not in ("mount", "umount"):
        argv.insert(0, "mount")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "umount":
            return unmount(args.mountpoint)
        return mount(args)
    except (UsageError, MountError) as e:
        print(f"gitfs: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# -- umount -------------------------------------------------------------------

def unmount(mountpoint: str) -> int:
    if shutil.which("fusermount3"):
        command = ["fusermount3", "-u", mountpoint]
    elif os.geteuid() == 0 and shutil.which("umount"):
        command = ["umount", mountpoint]
    else:
        raise UsageError("fusermount3 not found (install the fuse3 package)")
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise UsageError(f"cannot unmount {mountpoint}: {reason}")
    return 0


# -- mount: checks ---------------------------------------------------------------

def mount_options(repo: str, extra: list[str]) -> set[str]:
    options = {"ro", "subtype=gitfs", "default_permissions",
               # libfuse splits options at commas; a backslash escapes one.
               "fsname=" + repo.replace("\\", "\\\\").replace(",", "\\,")}
    for group in extra:
        for opt in group.split(","):
            if opt and opt not in ("rw", "ro"):  # always read-only
                options.add(opt)
    return options


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise UsageError("/dev/fuse is missing: this machine (or container) cannot do FUSE "
                         "(load the fuse module, or run the container with --device /dev/fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise UsageError("/dev/fuse is not accessible to this user")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        raise UsageError("fusermount3 not found (install the fuse3 package)")


def check_mountpoint(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"mountpoint {path} does not exist") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise UsageError(f"mountpoint {path} is a dead FUSE mount; run: gitfs umount {path}") from None
        raise UsageError(f"mountpoint {path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise UsageError(f"mountpoint {path} is already a mount point")


def open_store(repo: str, verify: bool):
    try:
        return odb.open(repo, verify=verify)
    except odb.NotARepository as e:
        raise UsageError(str(e)) from None  # odb's message already names the path and the reason
    except odb.OdbError as e:
        raise UsageError(f"{repo}: {e}") from None
    except OSError as e:
        raise UsageError(f"{repo}: {e.strerror}") from None


# -- mount: running -----------------------------------------------------------------

def mount(args) -> int:
    repo = args.repo = os.path.abspath(args.repo)  # the daemon leaves the working directory
    mountpoint = os.path.abspath(args.mountpoint)
    check_fuse()
    store = open_store(repo, args.verify)
    check_mountpoint(mountpoint)
    options = mount_options(repo, args.options)
    if args.log_file:
        # Absolute, since the daemon leaves the working directory; opened
        # now, so a bad path is reported before anything is mounted.
        args.log_file = os.path.abspath(args.log_file)
        try:
            open(args.log_file, "a").close()
        except OSError as e:
            raise UsageError(f"cannot write the log file {args.log_file}: {e.strerror}") from None
    if args.foreground:
        setup_logging(args, detached=False)
        return serve(store, args, mountpoint, options, ready=None)
    return detach_and_serve(args, store, mountpoint, options)
