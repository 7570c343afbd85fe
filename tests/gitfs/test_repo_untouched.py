"""The repository is never modified: after a full mounted run every file is byte-identical, with
the same mtime, and no file has appeared or vanished."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

import odb


def snapshot(root: Path) -> dict[str, tuple]:
    """path -> (kind, size, mtime_ns, mode, sha256 of the content) for everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            out[str(path.relative_to(root))] = ("dir" if path.is_dir() else "file", st.st_size if not path.is_dir()
                                                 else 0, st.st_mtime_ns, st.st_mode, digest)
    st = root.stat()
    out["."] = ("dir", 0, st.st_mtime_ns, st.st_mode, "")
    return out


def full_run(mnt: Path, git) -> int:
    """Everything a user does on a mount: list, stat, read, xattrs, abbreviations, write attempts."""
    objects = {oid: data for oid, _, data in git.contents(git.ids())}
    listed = 0
    for bucket in os.listdir(mnt):
        for name in os.listdir(mnt / bucket):
            path = mnt / bucket / name
            oid = bucket + name
            assert path.stat().st_size == len(objects[oid])
            assert path.read_bytes() == objects[oid]
            for attr in os.listxattr(path):
                os.getxattr(path, attr)
            listed += 1
    assert listed == len(objects)
    some = sorted(objects)[len(objects) // 2]
    short = mnt / some[:2] / some[2:8]
    assert short.read_bytes() == objects[some]
    for attempt in (
        lambda: (mnt / some[:2] / some[2:]).write_bytes(b"x"),
        lambda: open(mnt / some[:2] / "new-file", "wb"),
        lambda: os.unlink(mnt / some[:2] / some[2:]),
        lambda: os.mkdir(mnt / "zz"),
        lambda: os.rename(mnt / some[:2] / some[2:], mnt / some[:2] / "renamed"),
        lambda: os.chmod(mnt / some[:2] / some[2:], 0o777),
        lambda: os.utime(mnt / some[:2] / some[2:], (0, 0)),
        lambda: os.setxattr(mnt / some[:2] / some[2:], "user.git.type", b"tree"),
        lambda: os.truncate(mnt / some[:2] / some[2:], 0),
    ):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), e.value
    return listed


@pytest.mark.parametrize("name", ["midx", "sha256", "alt-relative", "loose", "bigblob"])
def test_full_mounted_run_leaves_the_repository_untouched(repo_copy, mount, name):
    repo = repo_copy(name)
    watched = [repo.path]
    if name == "alt-relative":
        watched.append(repo.path.parent / "alt-base")
    before = {str(w): snapshot(w) for w in watched}
    m = mount(repo.path)
    assert full_run(m.path, repo.git) > 0
    # A --verify mount and a refresh after re-reading: still nothing written.
    m2 = mount(repo.path, "--verify")
    assert full_run(m2.path, repo.git) > 0
    m.unmount()
    m2.unmount()
    after = {str(w): snapshot(w) for w in watched}
    for w in before:
        assert set(after[w]) == set(before[w]), "files appeared or vanished"
        changed = [p for p in before[w] if before[w][p] != after[w][p]]
        assert not changed, f"changed by a mounted run: {changed[:10]}"


def test_library_run_leaves_the_repository_untouched(repo_copy):
    repo = repo_copy("midx")
    before = snapshot(repo.path)
    with odb.open(repo.path, verify=True) as store:
        for oid in store:
            store.read(oid)
            store.locate(oid)
        store.refresh()
        with pytest.raises(odb.ObjectNotFound):
            store.read("0" * 40)  # a miss refreshes
    assert snapshot(repo.path) == before


def test_snapshot_sees_a_touch(repo_copy):
    """The check above can fail: touching one file's mtime or changing a byte is noticed."""
    repo = repo_copy("loose")
    before = snapshot(repo.path)
    victim = next(p for p in (repo.objects_dir).rglob("*") if p.is_file())
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert snapshot(repo.path) != before
