"""Who may read an object: the owner, group and mode of the file that holds it, masked by the directories above it.

A mount run with default_permissions lets the kernel check the modes it reports. For the mount
to refuse exactly whom the repository refuses (never less), each object shows an Access:

- uid, gid, mtime: those of the file that holds the object (its pack, its loose file, or the
  file in an alternate);
- mode: that file's permission bits with the write, setuid, setgid and sticky bits cleared
  (& 0o555), and then each of its three classes of users (its owner; the other members of its
  group; everyone else) keeps its bits only if every user in that class can search every
  directory on the way to the file. Those directories are all the ones a path walk looks into,
  symlink targets included: for /a/link/f with link -> /x/y, that is /, /a, /x, /x/y.
- For a pack, reading the object also needs its .idx, so a class that cannot read the .idx
  loses its bits too.

Whether a user passes a directory depends on which of the directory's classes they fall in, and
the mask is computed so that no member of a class is ever shown more than they have:

- the file's owner: known exactly. Passing needs the directory's owner bits if they own it,
  else its group bits if the group database says they are a member, else its other bits. If the
  owner has no entry in the database, both the group and the other bits are needed.
- the file's group: any member may also own the directory, be in its group or not. The group
  bits are needed (all of the directory's group members are in the file's group when the two
  groups are the same; otherwise some member may be in it); the other bits unless the two groups
  are the same; the owner bits unless the directory's owner is the file's owner (who is not in
  the group class) or root, or is known not to be a member.
- everyone else: the other bits; the group bits unless the directory's group is the file's
  group (its members are then in the group class); the owner bits unless the directory's owner
  is the file's owner or root, or a member of the file's group.
- root bypasses permission checks, in the repository and in the mount alike.

root_access() is the objects directory's Access (the root and the buckets show it), masked also
by what each alternate's objects directory and pack directory let through (read and search):
a bucket lists the alternates' objects too, and their names must not be shown to those who
could not list them in the repository.

Computed conservatively, the mask can show less than the repository allows (a POSIX ACL that
grants a named user more, a group whose members could all pass), never more. What it does not
see: ACL entries that grant the owning group less than the mode's group bits, and security
modules (SELinux, AppArmor).
"""

from __future__ import annotations

import os
import pwd
import stat
import weakref
from typing import NamedTuple

from .refused_paths import resolve

SEARCH = 1
READ = 4
LIST = READ | SEARCH
SHOWN_BITS = 0o555
OWNER, GROUP, OTHER = 6, 3, 0  # shifts of each class's bits in a mode


class Access(NamedTuple):
    uid: int
    gid: int
    mode: int  # permission bits only (see the module docstring)
    mtime_ns: int


def _bits(st: os.stat_result, cls: int) -> int:
    return (st.st_mode >> cls) & 7


class AccessRules:
    """Computes Access values; caches what directories allow until forget() (at each refresh)."""

    def __init__(self):
        self._groups: dict[int, frozenset[int] | None] = {}
        self.forget()

    def forget(self) -> None:
        """Drops what was learnt about directories and files: their owners or modes may change."""
        self._walks: dict[str, tuple[os.stat_result, ...]] = {}
        self._keeps: dict[tuple[str, int, int], int] = {}
        self._directories: dict[tuple, Access] = {}
        # Weak: a pack git deleted must not stay open (its index mapped) because of this.
        self._packs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -- the group database ---------------------------------------------------

    def groups_of(self, uid: int) -> frozenset[int] | None:
        """The groups a user is in (primary and supplementary); None if the user is unknown."""
        if uid not in self._groups:
            try:
                entry = pwd.getpwuid(uid)
                groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
            except (KeyError, OSError):
                groups = None
            self._groups[uid] = groups
        return self._groups[uid]

    def _member(self, uid: int, gid: int) -> bool | None:
        groups = self.groups_of(uid)
        return None if groups is None else gid in groups

    # -- one directory or file, three classes ---------------------------------

    def passes(self, st: os.stat_result, need: int, uid: int, gid: int) -> tuple[bool, bool, bool]:
        """Whether each class of a file owned by uid:gid (owner, group, other) can certainly
        do `need` (SEARCH, READ, LIST) with the directory or file whose stat is st."""

        def ok(cls: int) -> bool:
            return _bits(st, cls) & need == need

        d_uid, d_gid = st.st_uid, st.st_gid
        # The file's owner.
        if uid == 0:
            owner = True
        elif uid == d_uid:
            owner = ok(OWNER)
        else:
            member = self._member(uid, d_gid)
            owner = ok(GROUP) if member else ok(OTHER) if member is False else ok(GROUP) and ok(OTHER)
        # The other members of the file's group.
        group = ok(GROUP) and (gid == d_gid or ok(OTHER))
        if group and d_uid not in (uid, 0) and self._member(d_uid, gid) is not False:
            group = ok(OWNER)
        # Everyone else.
        other = ok(OTHER) and (gid == d_gid or ok(GROUP))
        if other and d_uid not in (uid, 0) and self._member(d_uid, gid) is not True:
            other = ok(OWNER)
        return owner, group, other

    def keep(self, uid: int, gid: int, checks) -> int:
        """The mode bits a file owned by uid:gid keeps once each (stat, need) of checks has
        masked its three classes."""
        owner = group = other = True
        for st, need in checks:
            o, g, t = self.passes(st, need, uid, gid)
            owner, group, other = owner and o, group and g, other and t
        return SHOWN_BITS & ((0o700 if owner else 0) | (0o070 if group else 0) | (0o007 if other else 0))

    # -- paths ----------------------------------------------------------------

    def walk(self, directory: str) -> tuple[os.stat_result, ...]:
        """The stats of every directory searched to reach the inside of `directory`, itself
        included (cached until forget())."""
        found = self._walks.get(directory)
        if found is None:
            trail: list[str] = []
            real = resolve(directory, trail)
            found = tuple(os.stat(d) for d in dict.fromkeys([*trail, real]))
            self._walks[directory] = found
        return found

    def for_file(self, directory: str, st: os.stat_result, linked: str | None = None, extra=()) -> Access:
        """The Access of a file in `directory` (st: its stat; linked: its path, if that is a
        symlink to it; extra: more (stat, need) checks). What the directory's walk lets through
        is cached per owner and group: the usual loose object costs a dictionary lookup."""
        uid, gid = st.st_uid, st.st_gid
        if linked is None and not extra:
            key = (directory, uid, gid)
            keep = self._keeps.get(key)
            if keep is None:
                keep = self._keeps[key] = self.keep(uid, gid, [(d, SEARCH) for d in self.walk(directory)])
        else:
            checks = [(d, SEARCH) for d in self.walk(directory)]
            if linked is not None:
                trail: list[str] = []
                resolve(linked, trail)
                checks += [(os.stat(d), SEARCH) for d in dict.fromkeys(trail)]
            keep = self.keep(uid, gid, checks + list(extra))
        return Access(uid, gid, st.st_mode & keep, st.st_mtime_ns)

    def for_pack(self, pack) -> Access:
        """A pack's Access (pack: odb.pack.Pack), computed once per pack until forget(): every
        object of the pack gets this same object, so callers may send an index to it."""
        found = self._packs.get(pack)
        if found is None:
            path = pack.pack_path
            linked = path if stat.S_ISLNK(os.lstat(path).st_mode) else None
            found = self.for_file(os.path.dirname(path), os.stat(path), linked, [(os.stat(pack.idx_path), READ)])
            self._packs[pack] = found
        return found

    def for_directory(self, directory: str, listed=()) -> Access:
        """A directory's Access (its own bits, as a directory shows them), masked by the
        directories above it and by `listed`: other directories whose contents it shows.
        Cached until forget()."""
        key = (directory, tuple(listed))
        found = self._directories.get(key)
        if found is None:
            found = self._directories[key] = self._for_directory(directory, listed)
        return found

    def _for_directory(self, directory: str, listed) -> Access:
        walk = self.walk(directory)
        checks = [(d, SEARCH) for d in walk[:-1]]
        for other in listed:
            other_walk = self.walk(other)
            checks += [(d, SEARCH) for d in other_walk[:-1]] + [(other_walk[-1], LIST)]
        st = walk[-1]
        return Access(st.st_uid, st.st_gid, st.st_mode & self.keep(st.st_uid, st.st_gid, checks), st.st_mtime_ns)

