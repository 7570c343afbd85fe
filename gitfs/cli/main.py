"""The gitfs command line: arguments, the commands, and one-line errors."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import time

from gitfs import __version__
from gitfs.cli import logs
from gitfs.cli import mountinfo
from gitfs.cli import probe
from gitfs.cli import unmount
from gitfs.cli.preflight import (
    UsageError,
    check_empty,
    check_fuse,
    check_mountpoint,
    check_not_self_reference,
    check_repository_readable,
    open_store,
)

DESCRIPTION = """\
Mount a git repository's object database as a read-only filesystem.

The root lists the fanout buckets 00..ff that hold objects; each bucket lists
its objects by the remaining hex digits of their id; each file holds the
object's inflated bytes (no "blob 12\\0" header). Abbreviated names resolve
when unique, and extended attributes (getfattr -d) tell the type, the pack or
loose source, the pack offset and the delta base.

Beside the buckets, two directories are found by name but not listed (so that
find and grep -r see each object once): .refs/ holds HEAD and every ref, as
symlinks to their objects, and .tree/REV/ is a revision's tree as directories
and files, REV being a branch, a tag, HEAD or an id (":" stands for "/" in a
ref name: .tree/heads:feature:x). Under .tree, user.git.id and user.git.mode
give each entry's id and mode as git ls-tree prints them.
"""

EPILOG = """\
examples:
  gitfs mount ~/src/project /mnt/objs     mount (detaches once the mount is live)
  ls /mnt/objs/5a                         objects whose id starts with 5a
  cat /mnt/objs/5a/0bde                   an abbreviated id, if unique
  gitfs resolve /mnt/objs/5a/0bde         its full id, or the candidates
  gitfs resolve /mnt/objs 'main~2'        a revision, as git rev-parse reads it
  ls /mnt/objs/.tree/main~2               a revision's tree (any git revision; ':' for '/')
  ls /mnt/objs/.log/main | head           its first-parent history, newest first
  getfattr -d /mnt/objs/5a/0bde...        user.git.type, .source, .offset, .delta_base
  grep -rl TODO /mnt/objs                 search every object
  ls -l /mnt/objs/.refs/heads             branches, as symlinks to their commits
  ls /mnt/objs/.tree/main/src             a revision's tree, as directories
  cat /mnt/objs/.tree/v1.0/README.md      a file as it is at tag v1.0
  gitfs status                            every gitfs mount, and whether it answers
  gitfs umount /mnt/objs                  unmount

/etc/fstab (mount.fuse3 runs `gitfs REPO MOUNTPOINT -o OPTS`; mount(8) looks for
gitfs on the system PATH, so link it there first, e.g.
ln -s /path/to/venv/bin/gitfs /usr/local/bin/gitfs):
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
MOUNTPOINT must be an empty directory: a non-empty one is refused, since the
mount would hide its files, unless -o nonempty is given. It may not be inside
the repository, nor in what is read of an alternate (pack/, info/, the
buckets), nor contain them (the mount would read itself).

logs: with -f (or -d) on standard error; detached, to $GITFS_LOG_FILE if it
is set, else to syslog (/dev/log) when it is there, otherwise to
/var/log/gitfs/gitfs.log for root and to $XDG_STATE_HOME/gitfs/gitfs.log
(~/.local/state/gitfs/gitfs.log) for others; --log-file overrides them all.
A warning repeated within a minute is written once, then counted. On a
terminal, a detached mount prints one line once it is live: where it is,
where it logs and how to unmount it.

signals: SIGINT, SIGTERM and SIGQUIT unmount cleanly; SIGHUP, SIGUSR1, SIGUSR2
and the other signals that would end the process are logged and ignored. If
the process was killed (SIGKILL), the mount answers "Transport endpoint is not
connected": `gitfs umount MOUNTPOINT` removes it. Under systemd (Type=notify,
with -f) READY=1 is sent on $NOTIFY_SOCKET once the mount is live.
"""

UMOUNT_HELP_EPILOG = """\
Only gitfs mounts are unmounted (the type fuse.gitfs in /proc/self/mountinfo);
anything else is refused. A busy mount is left alone and the processes that use
it are counted; -z detaches it at once and it goes away when they are done.
"""

STATUS_HELP_EPILOG = f"""\
For each gitfs mount: its mount point, repository, the mount process's pid,
uptime and cache use, and its health: "healthy" if it answered a stat within
{probe.PROBE_SECONDS:g} s, "not responding", or "dead" (its process is gone; gitfs umount
removes it); "unknown" when this user may not look inside (a mount without
allow_other admits only the user who mounted it). Fields the mount does not
report show as "-". The exit status is 1 if a mount listed is dead, not
responding or in error, 0 otherwise.
"""

RESOLVE_HELP_EPILOG = """\
NAME in hex digits is an abbreviated id; any other NAME is a revision as
`git rev-parse --verify` reads it: main~2, v1.0^{}, HEAD@{1}, main@{2020-01-01
12:00:00}, @{-1}, :/fix (only MNT, the mount point, with such a NAME).
The repository is read directly (with your own permissions), the mount's source
naming it. An ambiguous abbreviation lists the candidates one a line, as git's
"short object ID ... is ambiguous" hint does but with full ids: tags, commits
(author date and subject), trees, then blobs, each kind in id order; the exit
status is then 1.
"""

MIN_CACHE_SIZE = 1 << 20  # room for objects of 256 KiB (a quarter of the cache) held whole
_SIZE = re.compile(r"(\d+)([KMGT]?)(iB)?", re.IGNORECASE)
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
# Options mount(8) or mount.fuse3 may pass along that mean nothing to FUSE (fstab's own words).
_FSTAB_ONLY = {"rw", "ro", "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group",
               "nofail", "_netdev"}


class ArgumentError(UsageError):
    """A malformed command line (exit status 2, as argparse's own)."""


class Parser(argparse.ArgumentParser):
    """argparse, with each usage error said in one line."""

    def error(self, message):
        raise ArgumentError(f"{self.prog}: {message}; see {self.prog} --help")


def parse_size(text: str) -> int:
    """'256M', '1G', '65536', '4KiB' -> bytes (binary units); integers only."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (an integer with an optional K, M, G or T suffix, e.g. 256M)")
    value = int(match[1]) << _UNITS[match[2].upper()]
    if value < MIN_CACHE_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is below the minimum, {probe.size(MIN_CACHE_SIZE)}")
    memory = physical_memory()
    if memory and value > memory:
        raise argparse.ArgumentTypeError(f"{text!r} is more than this machine's memory ({probe.size(memory)})")
    return value


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


# Values that -o commonly takes, offered by the bash completion.
COMMON_FUSE_OPTIONS = ("allow_other", "allow_root", "nonempty", "auto_unmount", "nosuid", "nodev", "noexec",
                       "noatime")


def completes(action: argparse.Action, kind: str) -> argparse.Action:
    """Tags an argument with what the bash completion offers for it (scripts/make_docs.py):
    "directory", "file", "gitfs-mount", "fuse-option" or "nothing"."""
    action.completion = kind
    return action


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gitfs", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true",
                        help="print the version, the libraries' versions and the kernel features in use")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    mount = commands.add_parser(
        "mount", help="mount REPO's objects on MOUNTPOINT",
        description="Mount REPO's object database on MOUNTPOINT, read-only.",
        epilog=MOUNT_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    completes(mount.add_argument(
        "repo", metavar="REPO",
        help="a bare repository, a .git directory, a work tree, or an objects/ directory"), "directory")
    completes(mount.add_argument("mountpoint", metavar="MOUNTPOINT",
                                 help="an existing empty directory (see -o nonempty)"), "directory")
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="stay in the foreground (logs go to stderr unless --log-file)")
    mount.add_argument("-d", "--debug", action="store_true",
                       help="log every request and the errno it got; implies -f")
    completes(mount.add_argument("--log-file", metavar="PATH",
                                 help="append log lines to PATH, a regular file (see logs below)"), "file")
    completes(mount.add_argument(
        "--cache-size", metavar="SIZE", type=parse_size, default=256 << 20,
        help="bytes of inflated objects kept in memory: an integer with an optional "
             "K, M, G or T suffix (binary units), at least 1M (default 256M)"), "nothing")
    mount.add_argument("--verify", action="store_true",
                       help="hash every object as it is read; a mismatch gives EIO")
    completes(mount.add_argument(
        "-o", dest="options", metavar="OPT[,OPT...]", action="append", default=[],
        help="FUSE mount options, e.g. -o allow_other; -o nonempty mounts over a non-empty directory; "
             "-o lfs shows the content of Git LFS pointers under .tree"),
        "fuse-option")

    umount = commands.add_parser(
        "umount", help="unmount gitfs mounts",
        description="Unmount each MOUNTPOINT (through fusermount3 -u).",
        epilog=UMOUNT_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    completes(umount.add_argument("mountpoints", metavar="MOUNTPOINT", nargs="+", help="a gitfs mount point"),
              "gitfs-mount")
    umount.add_argument("-z", "--lazy", action="store_true",
                        help="detach now, even if busy; the mount goes once nothing uses it")

    show = commands.add_parser(
        "status", aliases=["list"], help="show each gitfs mount and whether it answers",
        description="Show gitfs mounts (all of them, or those named).",
        epilog=STATUS_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    completes(show.add_argument("mountpoints", metavar="MOUNTPOINT", nargs="*",
                                help="only these mounts (default: every gitfs mount)"), "gitfs-mount")
    show.add_argument("--json", action="store_true", help="one JSON list, for scripts")

    resolve = commands.add_parser(
        "resolve", help="the full id of an abbreviated name or a revision in a mount",
        description="Print the full id an abbreviation or a revision names: gitfs resolve MNT/25/83, "
                    "gitfs resolve MNT 2583 or gitfs resolve MNT main~2.",
        epilog=RESOLVE_HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    completes(resolve.add_argument("path", metavar="PATH", help="MNT/BUCKET/REST, or the mount point with NAME"),
              "file")
    completes(resolve.add_argument("name", metavar="NAME", nargs="?", help="an abbreviated id (2583) or a revision (main~2)"),
              "nothing")
    return parser


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def with_command(argv: list[str], commands: list[str]) -> list[str]:
    """argv with its command: `mount` is implied only for the mount.fuse3 call shape."""
    if not argv or argv[0].startswith("-") or argv[0] in commands:
        return argv
    if is_mount_helper_call(argv):
        return ["mount", *argv]
    close = difflib.get_close_matches(argv[0], commands, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"commands: {', '.join(commands)}"
    raise ArgumentError(f"gitfs: unknown command '{argv[0]}' ({hint})")


def is_mount_helper_call(argv: list[str]) -> bool:
    """`gitfs SOURCE MOUNTPOINT [-o OPTS]...`: what mount.fuse3 runs for an fstab line.

    SOURCE must look like a path (a slash, or an existing directory), so that a mistyped
    command (`gitfs unmount /mnt/objs`) is not taken for a repository.
    """
    if len(argv) < 2 or argv[1].startswith("-"):
        return False
    if "/" not in argv[0] and not os.path.isdir(argv[0]):
        return False
    rest = argv[2:]
    while rest:
        if rest[0] == "-o" and len(rest) > 1:
            rest = rest[2:]
        elif rest[0].startswith("-o") and len(rest[0]) > 2:
            rest = rest[1:]
        else:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(with_command(argv, command_names(parser)))
        if args.version:
            return print_version()
        if args.command is None:
            parser.error("a command is required: " + ", ".join(command_names(parser)))
        if args.command == "umount":
            return unmount_all(args.mountpoints, args.lazy)
        if args.command in ("status", "list"):
            return show_status(args.mountpoints, args.json)
        if args.command == "resolve":
            return resolve(args.path, args.name)
        return mount(args)
    except ArgumentError as e:
        print(e, file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"gitfs: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def print_version() -> int:
    from gitfs.features import describe
    print(f"gitfs {__version__}")
    for line in describe():
        print(line)
    return 0


# -- umount, status, resolve ---------------------------------------------------------


def unmount_all(paths: list[str], lazy: bool) -> int:
    failed = False
    for path in paths:
        try:
            unmount.unmount(path, lazy=lazy)
        except unmount.UnmountError as e:
            print(f"gitfs: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def show_status(paths: list[str], as_json: bool) -> int:
    mounts = mountinfo.gitfs_mounts()
    if paths:
        wanted = {mountinfo.lexical(p) for p in paths}
        missing = wanted - {m.mountpoint for m in mounts}
        if missing:
            raise UsageError(f"{sorted(missing)[0]}: not a gitfs mount")
        mounts = [m for m in mounts if m.mountpoint in wanted]
    states = probe.probe_all(mounts)
    if as_json:
        print(json.dumps([probe.as_json(s) for s in states], indent=2, sort_keys=True))
    elif states:
        now = time.time()
        print(probe.table([probe.row(s, now) for s in states]))
    else:
        print("no gitfs mounts", file=sys.stderr)
    return 0 if probe.fine(states) else 1


def resolve(path: str, name: str | None) -> int:
    from gitfs.cli.resolve import ResolveError, resolve_in_mount
    try:
        return resolve_in_mount(path, name)
    except ResolveError as e:
        raise UsageError(str(e)) from None


# -- mount ----------------------------------------------------------------------------


def mount_options(repo: str, extra: list[str]) -> tuple[set[str], bool]:
    """(options for FUSE, whether -o nonempty was given). rw is dropped, as ro is always set:
    mount() says so."""
    options = {"ro", "subtype=gitfs", "default_permissions",
               # libfuse splits options at commas; a backslash escapes one.
               "fsname=" + repo.replace("\\", "\\\\").replace(",", "\\,")}
    nonempty = False
    for group in extra:
        for opt in group.split(","):
            if opt == "nonempty":
                nonempty = True  # ours: libfuse 3 dropped the option
            elif opt and opt not in _FSTAB_ONLY and not opt.startswith(("x-", "comment=")):
                options.add(opt)
    return options, nonempty


def mount(args) -> int:
    from gitfs.fuse.daemon import MountError, delta_base_caches, detach_and_serve, serve
    repo = os.path.abspath(args.repo)
    mountpoint = os.path.abspath(args.mountpoint)
    foreground = args.foreground or args.debug  # as in libfuse and sshfs
    check_repository_readable(repo)
    store = open_store(repo, args.verify, cache_size=delta_base_caches(args.cache_size)[0])
    options, nonempty = mount_options(repo, args.options)
    # Refusals no option can lift come first: advice to add -o nonempty must not lead to
    # "inside the repository".
    check_mountpoint(mountpoint)
    mountpoint = os.path.realpath(mountpoint)
    check_not_self_reference(store, mountpoint)
    check_fuse()
    if not nonempty:
        check_empty(mountpoint)
    try:
        destination = logs.choose(args.log_file, detached=not foreground)
    except logs.LogError as e:
        raise UsageError(str(e)) from None
    warn_if_slow()
    if "rw" in ",".join(args.options).split(","):
        # Said once nothing can refuse the mount any more: a refusal stays the only line.
        print("gitfs: -o rw ignored: the mount is always read-only", file=sys.stderr)
    try:
        if foreground:
            from gitfs.cli import systemd
            logs.setup_logging(destination, debug=args.debug)
            return serve(store, repo, mountpoint, options, args.cache_size,
                         ready=lambda: systemd.notify("READY=1"))
        code = detach_and_serve(store, repo, mountpoint, options, args.cache_size, destination)
    except MountError as e:
        raise UsageError(str(e)) from None
    if code == 0 and sys.stdout.isatty():
        # A person at a terminal learns where it went and where its log is; scripts get silence.
        print(f"gitfs: mounted {repo} on {mountpoint} (log: {logs.describe(destination)}; "
              f"unmount: gitfs umount {mountpoint})")
    return code


def warn_if_slow() -> None:
    """Said at mount time on a terminal (and logged by the mount): pip shows build warnings only
    with -v, so a C accelerator that failed to build would otherwise go unnoticed."""
    from gitfs.features import features
    if not features()["c_delta"] and sys.stderr.isatty():
        print("gitfs: warning: the C delta accelerator is not built, so reads of deltified objects "
              "are several times slower (gitfs --version tells what is in use)", file=sys.stderr)
