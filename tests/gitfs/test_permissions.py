"""The mount shows nobody more than the repository does: real mounts, read by a second user.

Root mounts with -o allow_other (the README's fstab line); default_permissions makes the kernel
check the modes the mount reports, which mirror the repository's (odb/access.py). A user who
cannot read a repository (or an alternate, or one pack) cannot read it through the mount either.
"""

from __future__ import annotations

import shutil

import pytest

from mounting import Mount
from oracle import Git
from second_user import NOBODY, own, run_as, shared_directory

READ_ALL = """
import os, json
root = sys.argv[1]
out = {}
for bucket in sorted(os.listdir(root)) if os.access(root, os.X_OK) else []:
    for name in os.listdir(os.path.join(root, bucket)):
        path = os.path.join(root, bucket, name)
        try:
            with open(path, "rb") as f:
                f.read()
            out[bucket + name] = "ok"
        except OSError as e:
            out[bucket + name] = e.errno
try:
    os.listdir(root)
    listed = True
except OSError as e:
    listed = e.errno
print(json.dumps({"listed": listed, "objects": out}))
"""


@pytest.fixture
def shared(fuse_available):
    """A directory every user can search, and in it a mount point that is unmounted first."""
    with shared_directory() as path:
        mounts = []

        def mount(repo, *extra):
            m = Mount(repo, path / f"mnt{len(mounts)}", path / f"gitfs{len(mounts)}.log", *extra)
            mounts.append(m)
            return m
        try:
            yield path, mount
        finally:
            for m in mounts:
                m.unmount()
                assert "Traceback" not in m.log(), m.log()


def copy(fixture_repo, name: str, where) -> object:
    target = where / name
    shutil.copytree(fixture_repo(name).path, target, symlinks=True)
    return target


@pytest.mark.parametrize("mode", [0o700, 0o755])
def test_a_private_repository_stays_private(fixture_repo, shared, mode):
    where, mount = shared
    repo = copy(fixture_repo, "bare", where)
    own(repo, 0, 0, 0o444, 0o755)
    repo.chmod(mode)
    m = mount(repo, "-o", "allow_other")
    seen = run_as(NOBODY, READ_ALL, str(m.path))
    if mode == 0o700:
        assert seen["listed"] == 13 and seen["objects"] == {}  # EACCES at the root
    else:
        assert seen["listed"] is True and seen["objects"] and set(seen["objects"].values()) == {"ok"}


def test_a_private_pack_keeps_its_objects_private(fixture_repo, shared):
    where, mount = shared
    repo = copy(fixture_repo, "bare", where)
    own(repo, 0, 0, 0o444, 0o755)
    packs = sorted((repo / "objects" / "pack").glob("*.pack"))
    private = packs[0]
    private.chmod(0o400)
    m = mount(repo, "-o", "allow_other")
    git = Git(repo)
    in_private = _ids_of_pack(git, private)
    seen = run_as(NOBODY, READ_ALL, str(m.path))
    assert seen["listed"] is True
    refused = {oid for oid, result in seen["objects"].items() if result != "ok"}
    # Objects only the private pack holds are refused (EACCES), the others read.
    only_private = in_private - _ids_elsewhere(git, repo, private)
    assert only_private and only_private <= refused
    assert all(seen["objects"][oid] == 13 for oid in refused)
    assert not refused - in_private


def _ids_of_pack(git, pack) -> set[str]:
    out = git.run_bytes("show-index", input=pack.with_suffix(".idx").read_bytes()).decode()
    return {line.split()[1] for line in out.splitlines()}


def _ids_elsewhere(git, repo, private) -> set[str]:
    out = set()
    for pack in (repo / "objects" / "pack").glob("*.pack"):
        if pack != private:
            out |= _ids_of_pack(git, pack)
    out |= set(git.loose_ids())
    return out
