"""`gitfs resolve`: the full id behind an abbreviated name or a revision in a mount, or git's list of candidates.

Hex digits (MNT/25/83, or MNT 2583) are an abbreviated id, as the bucket view reads them. Any
other NAME is a revision in git's language (main~2, v1.0^{}, @{-1}, HEAD@{1}, :/fix), read by
odb.revision as `git rev-parse --verify` reads it, over the mounted repository's refs.
"""

from __future__ import annotations

import datetime
import os
import sys

import odb

from gitfs.cli import mountinfo

# git's order for the candidates of an ambiguous name (object-name.c sort_ambiguous).
KIND_ORDER = {"tag": 0, "commit": 1, "tree": 2, "blob": 3}


class ResolveError(Exception):
    """One line for the user."""


def resolve_in_mount(path: str, name: str | None) -> int:
    """Prints the full id (0), or the candidates of an ambiguous name (1); ResolveError else."""
    mount = gitfs_mount(path)
    at_root = os.path.relpath(mountinfo.lexical(path), mount.mountpoint) == "."
    if name is not None and at_root and not _hex(name.replace("/", "")):
        return resolve_revision(mount.source, name)
    repository, prefix = target(path, name)
    store = open_repository(repository)
    try:
        print(store.resolve_prefix(prefix))
        return 0
    except odb.AmbiguousPrefix as e:
        return ambiguous(store, prefix, e.candidates)
    except odb.ObjectNotFound:
        raise ResolveError(f"no object {prefix} in {repository}") from None
    except odb.OdbError as e:
        raise ResolveError(str(e)) from None


def ambiguous(store, prefix: str, ids) -> int:
    """What git prints of an ambiguous short id (the candidates, one line each): exit status 1."""
    print(f"gitfs: short object ID {prefix} is ambiguous; the candidates are:", file=sys.stderr)
    for line in candidates(store, ids):
        print(line)
    return 1


def _hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def gitfs_mount(path: str):
    """The gitfs mount path is on (the table is read, never the mount)."""
    mount = mountinfo.mount_containing(path)
    if mount is None or mount.fstype != mountinfo.GITFS_TYPE:
        raise ResolveError(f"{path} is not on a gitfs mount")
    return mount


def resolve_revision(repository: str, rev: str) -> int:
    """Prints what `git rev-parse --verify rev` prints (0), or the candidates of an ambiguous
    abbreviation in it (1); ResolveError else."""
    store = open_repository(repository)
    if store.git_dir is None:
        raise ResolveError(f"{repository} has no refs (an objects directory): name an object by its hex digits")
    try:
        refs = odb.RefStore(store.git_dir, store.common_dir, store.format)
        named = odb.revision.lookup(store, refs, rev)
        if named.also:
            print(f"gitfs: warning: refname '{rev}' is ambiguous ({named.ref}, {', '.join(named.also)})",
                  file=sys.stderr)
        print(named.oid.hex())
        return 0
    except odb.AmbiguousPrefix as e:
        return ambiguous(store, e.prefix, e.candidates)
    except odb.revision.BadRevision as e:
        raise ResolveError(str(e)) from None
    except odb.ObjectNotFound:
        raise ResolveError(f"unknown revision {rev} in {repository}") from None
    except (odb.OdbError, OSError) as e:
        raise ResolveError(f"{rev}: {e}") from None


def target(path: str, name: str | None) -> tuple[str, str]:
    """(repository, hex prefix) from `MNT/25/83` or `MNT 2583` (the table is read, never the mount)."""
    mount = gitfs_mount(path)
    inside = os.path.relpath(mountinfo.lexical(path), mount.mountpoint)
    digits = "".join(p for p in inside.split("/") if p != ".") + (name or "").replace("/", "")
    if not digits:
        raise ResolveError(f"name an object: {mount.mountpoint}/25/83 or {mount.mountpoint} 2583")
    if any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ResolveError(f"{digits} is not an object name (hex digits only)")
    if len(digits) < 4:
        raise ResolveError(f"{digits}: an abbreviated id needs at least 4 hex digits")
    return mount.source, digits.lower()


def open_repository(path: str):
    try:
        return odb.open(path)
    except (odb.AccessDenied, odb.NotARepository) as e:
        raise ResolveError(str(e)) from None
    except odb.OdbError as e:
        raise ResolveError(f"{path}: {e}") from None
    except OSError as e:
        raise ResolveError(f"{path}: {e.strerror}") from None


def candidates(store, ids: list[str]) -> list[str]:
    """git's hint lines ("<id> commit 2020-01-01 - subject"), with full ids, in git's order."""
    described = []
    for oid in ids:
        try:
            kind, data = store.read(oid)
        except odb.OdbError:
            described.append((len(KIND_ORDER), oid, f"{oid} [bad object]"))
            continue
        described.append((KIND_ORDER[kind], oid, f"{oid} {describe(kind, data)}"))
    return [line for _, _, line in sorted(described)]


def describe(kind: str, data: bytes) -> str:
    if kind == "commit":
        headers, message = split_object(data)
        return f"commit {short_date(headers.get(b'author'), own_zone=True)} - {subject(message)}"
    if kind == "tag":
        headers, _ = split_object(data)
        if b"tag" not in headers:
            return "[bad tag, could not parse it]"
        # git prints a tag's date in UTC (show_date with tz 0), a commit's in its own zone.
        return f"tag {short_date(headers.get(b'tagger'), own_zone=False)} - {headers[b'tag'].decode(errors='replace')}"
    return kind


def split_object(data: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """The first value of each header line, and the message after the blank line."""
    head, _, message = data.partition(b"\n\n")
    headers: dict[bytes, bytes] = {}
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key and not line.startswith(b" "):
            headers.setdefault(key, value)
    return headers, message


def short_date(ident: bytes | None, *, own_zone: bool) -> str:
    """YYYY-MM-DD of a "Name <email> 1577839200 +0100" line, as git's --date=short."""
    try:
        stamp, zone = ident.rsplit(b">", 1)[1].split()
        seconds = int(stamp)
        offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
        tz = datetime.timezone(datetime.timedelta(seconds=-offset if zone[:1] == b"-" else offset))
    except (AttributeError, ValueError, IndexError):
        seconds, tz = 0, datetime.timezone.utc  # git shows the epoch for a date it cannot parse
    zone_used = tz if own_zone else datetime.timezone.utc
    try:
        return datetime.datetime.fromtimestamp(seconds, zone_used).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "1970-01-01"


def subject(message: bytes) -> str:
    """git's %s: the first paragraph, its lines joined by spaces."""
    lines = []
    for line in message.split(b"\n"):
        line = line.rstrip()
        if not line:
            if lines:
                break
            continue
        lines.append(line)
    return b" ".join(lines).decode(errors="replace")
