"""Permissions: Store.stat and root_access mirror the repository (never more than it allows, checked
against what other users really can read), and what this process may not read is AccessDenied."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import damage
import odb
from second_user import DAEMON, NOBODY, STRANGER, SYNC, User, allowed, own, run_as, shared_directory

READ, SEARCH, LIST = 4, 1, 5


@pytest.fixture
def shared(fixtures_root):
    """copy(name) -> a private copy of a fixture repository in a directory every user can search."""
    with shared_directory() as top:

        def copy(name: str) -> Path:
            dest = top / name
            shutil.copytree(fixtures_root / name, dest, symlinks=True)
            return dest

        copy.top = top
        yield copy


def open_as(user: User, path: Path, *calls: str):
    """Opens path as user and runs each call ("read OID", "read_size OID", "read_sizes OID",
    "stat OID", "ids"); returns [the exception's class and message, or the result] per call (or
    for the open)."""
    code = """
import odb
out = []
try:
    store = odb.open(sys.argv[1])
except odb.OdbError as e:
    print(json.dumps([[type(e).__name__, str(e)]])); raise SystemExit
for call in sys.argv[2:]:
    name, _, arg = call.partition(" ")
    try:
        if name == "read_sizes":
            sizes, errors = store.read_sizes(bytes.fromhex(arg))
            if errors:
                raise errors[0]
            value = sizes[0]
        else:
            value = list(store) if name == "ids" else getattr(store, name)(arg)
        out.append(["ok", len(value[1]) if name == "read" else value if name != "stat" else value[0]])
    except odb.OdbError as e:
        out.append([type(e).__name__, str(e)])
print(json.dumps(out))
"""
    return run_as(user, code, str(path), *calls)


# ---- EACCES is permission denied ------------------------------------------------------------------


@pytest.mark.parametrize("locked", [".", ".git", ".git/objects", ".git/objects/pack", ".git/config", ".git/HEAD"])
def test_unreadable_repository_is_access_denied_at_open(shared, locked):
    repo = shared("midx")
    (repo / locked).chmod(0o700 if (repo / locked).is_dir() else 0o600)
    (result,) = open_as(NOBODY, repo)
    assert result[0] == "AccessDenied", result
    assert result[1].endswith(": permission denied"), result


def test_unreadable_bare_repository(shared):
    repo = shared("bare")
    repo.chmod(0o700)
    assert open_as(NOBODY, repo) == [["AccessDenied", f"{repo}/.git: permission denied"]]


@pytest.mark.parametrize("which", ["in the midx", "outside the midx"])
def test_unreadable_pack_reads_as_access_denied(shared, fixture_repo, which):
    """Its .idx is readable, so its objects are listed; reading one says permission denied, not
    "not found" or a corrupt object. Everything else still reads."""
    repo = shared("midx")
    objects = repo / ".git" / "objects"
    named, outside = damage.midx_packs(objects)
    pack = named[0] if which == "in the midx" else outside[0]
    pack.chmod(0o400)
    locked = sorted(damage.ids_in(pack))
    git = fixture_repo("midx").git
    others = sorted(set(git.ids()) - set(locked))
    asked = ("read", "read_size", "read_sizes", "read_header", "stat")
    calls = ["ids"] + [f"{c} {locked[0]}" for c in asked] + [f"read {o}" for o in others[:20]]
    results = open_as(NOBODY, repo, *calls)
    assert results[0] == ["ok", git.ids()]
    for result in results[1 : 1 + len(asked)]:
        assert result == ["AccessDenied", f"{pack}: permission denied"], result
    assert all(r[0] == "ok" for r in results[1 + len(asked) :]), results[1 + len(asked) :]


def test_unreadable_loose_object_reads_as_access_denied(shared, fixture_repo):
    repo = shared("loose")
    git = fixture_repo("loose").git
    oid = git.loose_ids()[0]
    path = repo / ".git" / "objects" / oid[:2] / oid[2:]
    path.chmod(0o400)
    asked = ("read", "read_size", "read_sizes", "stat")
    results = open_as(NOBODY, repo, *(f"{c} {oid}" for c in asked), f"read {git.ids()[-1]}")
    for result in results[: len(asked)]:
        assert result == ["AccessDenied", f"{path}: permission denied"], result
    assert results[len(asked)][0] == "ok" or git.ids()[-1] == oid


# ---- Access: what the mount shows ---------------------------------------------------------------


def holding_files(store, oid: str) -> list[str]:
    """The files a user must read to read this object from the repository itself."""
    loc = store._find(bytes.fromhex(oid))
    if loc.pack is None:
        return [loc.source.loose.path(loc.raw)]
    return [loc.pack.pack_path, loc.pack.idx_path]


def test_private_repository_shows_its_owner_only(shared, fixture_repo):
    """The issue's case: a 0700 repository directory owned by U whose objects are 0444."""
    repo = shared("midx")
    own(repo, NOBODY.uid, NOBODY.gid, 0o444, 0o755)
    repo.chmod(0o700)
    with odb.open(repo) as store:
        for oid in fixture_repo("midx").git.ids():
            size, access = store.stat(oid)
            assert size == store.read_size(oid)
            assert (access.uid, access.gid, access.mode) == (NOBODY.uid, NOBODY.gid, 0o400), oid
            holder = os.stat(holding_files(store, oid)[0])
            assert access.mtime_ns == holder.st_mtime_ns
        root = store.root_access()
        assert (root.uid, root.mode) == (NOBODY.uid, 0o500)


def test_objects_of_another_user_in_a_private_directory_show_to_nobody(shared, fixture_repo):
    repo = shared("loose")
    own(repo / ".git" / "objects", DAEMON.uid, DAEMON.gid, 0o444, 0o755)
    os.chown(repo, NOBODY.uid, NOBODY.gid)
    repo.chmod(0o700)
    with odb.open(repo) as store:
        for oid in fixture_repo("loose").git.ids():
            assert store.stat(oid)[1].mode == 0, oid


def test_group_shared_repository(shared, fixture_repo):
    repo = shared("midx")
    own(repo, 0, NOBODY.gid, 0o444, 0o2750)
    with odb.open(repo) as store:
        modes = {store.stat(oid)[1].mode for oid in fixture_repo("midx").git.ids()}
        assert modes == {0o440}
        assert store.root_access().mode == 0o550


def test_one_access_object_per_pack(fixture_repo):
    repo = fixture_repo("midx")
    with odb.open(repo.path) as store:
        by_pack: dict[str, set[int]] = {}
        for oid in repo.git.ids():
            loc = store._find(bytes.fromhex(oid))
            if loc.pack is not None:
                by_pack.setdefault(loc.pack.name, set()).add(id(store.stat(oid)[1]))
        assert len(by_pack) > 1 and all(len(ids) == 1 for ids in by_pack.values()), by_pack


def test_alternate_in_a_private_directory_stays_private(shared, fixture_repo):
    """An object found through an alternate that lives in another user's 0700 directory: only that
    user may read it; and the root (which lists it) is masked for everyone else too."""
    shared("alt-base")
    repo = shared("alt-relative")
    base = shared.top / "alt-base"
    own(repo, NOBODY.uid, NOBODY.gid, 0o444, 0o755)
    own(base, DAEMON.uid, DAEMON.gid, 0o444, 0o755)
    base.chmod(0o700)
    borrowed = set(fixture_repo("alt-base").git.ids())
    with odb.open(repo) as store:
        for oid in fixture_repo("alt-relative").git.ids():
            access = store.stat(oid)[1]
            if oid in borrowed and store.locate(oid).source.startswith("alternate:"):
                assert (access.uid, access.mode) == (DAEMON.uid, 0o400), oid
            else:
                assert (access.uid, access.mode) == (NOBODY.uid, 0o444), oid
        root = store.root_access()
        assert root.uid == NOBODY.uid and root.mode == 0, oct(root.mode)


# ---- the rule against reality --------------------------------------------------------------------

REPOSITORY_DIRS = [(NOBODY.uid, NOBODY.gid, 0o700), (0, NOBODY.gid, 0o750), (DAEMON.uid, DAEMON.gid, 0o755),
                   (0, 0, 0o711), (0, 0, 0o705)]
OBJECT_FILES = [(NOBODY.uid, NOBODY.gid, 0o444, 0o755), (DAEMON.uid, DAEMON.gid, 0o440, 0o750),
                (0, NOBODY.gid, 0o404, 0o705)]
USERS = [NOBODY, DAEMON, SYNC, STRANGER]

CAN_READ = """
import os
out = []
for paths in json.loads(sys.argv[1]):
    ok = True
    for path in paths:
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            ok = False
    out.append(ok)
listed = True
for d in json.loads(sys.argv[2]):
    try:
        os.listdir(d)
    except OSError:
        listed = False
print(json.dumps([out, listed]))
"""


def check_against_reality(repo: Path, ids: list[str], vacuous_ok: bool = False) -> None:
    """For each user: whatever the kernel would let them read in the mount (the object's Access,
    and search on the root and bucket, which show root_access), they can read in the repository
    itself; whatever root they could list, they could list in the repository."""
    with odb.open(repo) as store:
        accesses = [store.stat(oid)[1] for oid in ids]
        root = store.root_access()
        files_of = [holding_files(store, oid) for oid in ids]
        listed_dirs = [d.path for d in store._dirs] + [d.pack_dir for d in store._dirs]
        monotone = all(_monotone(st.st_mode) for d in listed_dirs for st in store._access.walk(d))
    shown_somewhere = readable_somewhere = 0
    for user in USERS:
        really, can_list = run_as(user, CAN_READ, json.dumps(files_of), json.dumps(listed_dirs))
        for oid, access, real in zip(ids, accesses, really):
            shown = allowed(user, root.uid, root.gid, root.mode, SEARCH) and \
                allowed(user, access.uid, access.gid, access.mode, READ)
            assert real or not shown, (user, oid, oct(access.mode), access.uid, access.gid)
            shown_somewhere += shown
            readable_somewhere += real
        if allowed(user, root.uid, root.gid, root.mode, LIST):
            assert can_list, (user, oct(root.mode))
    # Not vacuous: where some user can read objects in the repository, the mount shows some (when
    # no class of a directory has less than the class after it: otherwise, not knowing every
    # member of a group, the rule may refuse everyone).
    if monotone and not vacuous_ok:
        assert shown_somewhere or not readable_somewhere


@pytest.mark.parametrize("files", OBJECT_FILES, ids=lambda f: f"files-{f[0]}:{f[1]}-{f[2]:o}")
@pytest.mark.parametrize("top", REPOSITORY_DIRS, ids=lambda d: f"top-{d[0]}:{d[1]}-{d[2]:o}")
def test_the_mount_never_allows_more_than_the_repository(shared, fixture_repo, top, files):
    repo = shared("midx")
    uid, gid, file_mode, dir_mode = files
    own(repo / ".git" / "objects", uid, gid, file_mode, dir_mode)
    os.chown(repo, top[0], top[1])
    repo.chmod(top[2])
    check_against_reality(repo, fixture_repo("midx").git.ids())


@pytest.mark.parametrize("base", OBJECT_FILES, ids=lambda f: f"alternate-{f[0]}:{f[1]}-{f[2]:o}-{f[3]:o}")
@pytest.mark.parametrize("main", OBJECT_FILES[:2], ids=lambda f: f"main-{f[0]}:{f[1]}-{f[2]:o}-{f[3]:o}")
def test_through_alternates_too(shared, fixture_repo, main, base):
    shared("alt-base")
    repo = shared("alt-relative")
    own(repo, *main)
    own(shared.top / "alt-base", *base)
    # An alternate that not everyone can list makes the root (which lists its objects) private
    # to those who can: then nobody but root may be shown anything.
    check_against_reality(repo, fixture_repo("alt-relative").git.ids(), vacuous_ok=base[3] & 0o005 != 0o005)


def _monotone(mode: int) -> bool:
    u, g, o = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7
    return u & g == g and g & o == o
