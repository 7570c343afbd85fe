"""No self-reference: once Store.refuse_under(mount point) is called, nothing at or below it is opened,
whether a loose object, a bucket directory, a pack or an alternate leads there; tested without FUSE,
with a plain directory standing in for the mount point, watched with inotify."""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
from pathlib import Path

import pytest

import damage
import odb
from limits import time_limit
from odb import refused_paths
from odb.refused_paths import SelfReference, resolve
from size_check import available, check_sizes, using

IN_ACCESS, IN_OPEN = 0x1, 0x20


class Watch:
    """inotify on a directory tree: every open or read of anything in it is recorded."""

    def __init__(self, top: Path):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.names = {}
        for d in [top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())]:
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(d), IN_ACCESS | IN_OPEN)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.names[wd] = d

    def events(self) -> list[str]:
        out = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                wd, mask, _, size = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16 : pos + 16 + size].rstrip(b"\0").decode()
                out.append(f"{self.names[wd]}/{name} mask {mask:#x}")
                pos += 16 + size

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def refusal(monkeypatch):
    """Refusals are for the whole process: each test starts with none and leaves none behind."""
    monkeypatch.setattr(refused_paths, "_refused", frozenset())
    monkeypatch.setattr(refused_paths, "_prefixes", ())


@pytest.fixture
def mountpoint(tmp_path, refusal):
    """A directory standing in for the mount point, with a watch on it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    return mnt


def refuse_and_watch(store, mnt: Path) -> Watch:
    store.refuse_under(mnt)
    return Watch(mnt)


# ---- resolve() ----------------------------------------------------------------------------------


def test_resolve_agrees_with_realpath(tmp_path, refusal):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to("a/b")
    (tmp_path / "abs").symlink_to(tmp_path / "a")
    (tmp_path / "loop").symlink_to("loop")
    for path in ["link", "link/..", "abs/b/../b", "a/./b", "missing/x/..", "link/missing", "abs", "."]:
        full = tmp_path / path
        assert resolve(full) == os.path.realpath(full), path
    os.chdir(tmp_path)
    assert resolve("link") == str(tmp_path / "a" / "b")
    with pytest.raises(OSError):
        resolve(tmp_path / "loop" / "x")


def test_resolve_reports_every_directory_searched(tmp_path, refusal):
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "x" / "y")
    trail = []
    resolve(tmp_path / "a" / "link" / "f", trail)
    ancestors = [str(p) for p in reversed(tmp_path.parents)] + [str(tmp_path)]
    assert set(trail) == {*ancestors, str(tmp_path / "a"), str(tmp_path / "x"), str(tmp_path / "x" / "y")}


def test_resolve_never_looks_into_a_refused_directory(mountpoint, monkeypatch):
    (mountpoint / "inside").mkdir()
    link = mountpoint.parent / "link"
    link.symlink_to(mountpoint / "inside")
    refused_paths.refuse(mountpoint)
    looked = []
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: looked.append(str(p)) or real_lstat(p, *a, **k))
    for path in (mountpoint, mountpoint / "inside", link, link / "x", mountpoint.parent / "link2" / ".." / "mnt"):
        with pytest.raises(SelfReference):
            resolve(path)
    assert not [p for p in looked if p == str(mountpoint) or p.startswith(str(mountpoint) + "/")], looked
    assert resolve(mountpoint.parent) == str(mountpoint.parent)


def test_a_refusal_handed_on_looks_nothing_up(refusal, monkeypatch):
    # A helper process starts after the mount is live: a look at the mount point then waits for
    # the loop and keeps the mount busy (an unmount right after mounting failed with EBUSY).
    def no_look(*args, **kwargs):
        raise AssertionError(f"looked at {args}")

    for name in ("lstat", "stat", "readlink"):
        monkeypatch.setattr(os, name, no_look)
    monkeypatch.setattr(os.path, "realpath", no_look)
    refused_paths.refuse_real("/srv/mnt")
    assert refused_paths.refused() == ("/srv/mnt",)
    assert refused_paths.inside("/srv/mnt/ab") and not refused_paths.inside("/srv/mntx")
    for unresolved in ("mnt", "/srv/../mnt", "/srv/mnt/"):
        with pytest.raises(ValueError):
            refused_paths.refuse_real(unresolved)


def test_the_real_path_is_what_is_handed_on(mountpoint):
    link = mountpoint.parent / "via"
    link.symlink_to(mountpoint)
    refused_paths.refuse(link)
    assert refused_paths.refused() == (str(mountpoint),)


# ---- the store ----------------------------------------------------------------------------------


def test_directories_are_every_directory_the_store_reads(fixture_repo, repo_copy, tmp_path):
    repo = fixture_repo("alt-chain")
    with odb.open(repo.path) as store:
        dirs = store.directories()
        assert dirs[0] == str(repo.git_dir) and dirs[1] == str(repo.objects_dir)
        want = {os.path.realpath(fixture_repo(n).objects_dir) for n in ("alt-chain", "alt-relative", "alt-base")}
        assert set(dirs[1:]) == want
    main = repo_copy("loose")
    worktree = tmp_path / "linked"
    main.git.run("worktree", "add", "-q", str(worktree))
    with odb.open(worktree) as store:
        assert store.directories() == [str(main.git_dir / "worktrees" / "linked"), str(main.git_dir),
                                       str(main.objects_dir)]
    with odb.open(repo.objects_dir) as store:
        assert store.directories()[0] == str(repo.objects_dir)


def test_loose_object_that_is_a_symlink_into_the_mount(repo_copy, mountpoint):
    repo = repo_copy("loose")
    ids = repo.git.ids()
    oid = repo.git.loose_ids()[0]
    path = damage.loose_path(repo.objects_dir, oid)
    shutil.move(path, mountpoint / "object")
    path.symlink_to(mountpoint / "object")
    with odb.open(repo.path) as store:
        watch = refuse_and_watch(store, mountpoint)
        with time_limit(5):
            for call in (store.read, store.read_size, store.read_header, store.stat, store.locate):
                with pytest.raises(odb.CorruptObject, match="resolves into the mount itself"):
                    call(oid)
            (answer,) = check_sizes(store, [oid])
            assert answer[0] is odb.CorruptObject and "resolves into the mount itself" in answer[1]
            assert sorted(store) == ids  # listed: reading it says why it cannot be
            for other in ids:
                if other != oid:
                    assert store.read(other) == repo.git.read(other)
        assert watch.events() == []
        watch.close()


def test_bucket_directory_that_is_a_symlink_into_the_mount(repo_copy, mountpoint, caplog):
    repo = repo_copy("loose")
    ids = repo.git.ids()
    oid = repo.git.loose_ids()[0]
    bucket = repo.objects_dir / oid[:2]
    in_bucket = {o for o in ids if o.startswith(oid[:2])}
    shutil.move(bucket, mountpoint / oid[:2])
    bucket.symlink_to(mountpoint / oid[:2])
    with odb.open(repo.path) as store:
        watch = refuse_and_watch(store, mountpoint)
        with time_limit(5):
            with pytest.raises(odb.ObjectNotFound):
                store.read(oid)
            assert sorted(store) == sorted(set(ids) - in_bucket)
            assert store.refresh() in (True, False)
            store.read_size(sorted(set(ids) - in_bucket)[0])
        assert watch.events() == []
        watch.close()
    warned = [r for r in caplog.records if "resolves into the mount itself" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]


def test_bucket_swapped_for_a_symlink_after_the_refusal(repo_copy, mountpoint):
    """A bucket replaced while the mount is up, by a symlink to a copy inside the mount: never
    entered. (A directory odb holds open stays where it is: nothing moves into a FUSE mount.)"""
    repo = repo_copy("loose")
    oid = repo.git.loose_ids()[0]
    bucket = repo.objects_dir / oid[:2]
    with odb.open(repo.path) as store:
        store.refuse_under(mountpoint)
        assert store.read(oid)
        shutil.copytree(bucket, mountpoint / oid[:2])
        shutil.rmtree(bucket)
        bucket.symlink_to(mountpoint / oid[:2])
        watch = Watch(mountpoint)
        with time_limit(5):
            store._reader.cache.clear()
            with pytest.raises(odb.ObjectNotFound):
                store.read(oid)
            store.refresh()
            assert oid not in store.iter_bucket(int(oid[:2], 16))
        assert watch.events() == []
        watch.close()


@pytest.mark.parametrize("line", ["{mnt}", "{mnt}/sub/objects", "{link}"])
def test_alternate_leading_into_the_mount_is_ignored(repo_copy, mountpoint, line, caplog):
    repo = repo_copy("loose")
    own = repo.git.ids()
    other = repo_copy("alt-base")
    (mountpoint / "sub").mkdir()
    shutil.copytree(other.objects_dir, mountpoint / "sub" / "objects")
    link = mountpoint.parent / "innocent-looking"
    link.symlink_to(mountpoint / "sub" / "objects")
    (repo.objects_dir / "info" / "alternates").write_text(line.format(mnt=mountpoint, link=link) + "\n")
    with odb.open(repo.path) as store:
        assert len(store._dirs) == 2  # before the refusal, the alternate is read as git reads it
        watch = refuse_and_watch(store, mountpoint)
        assert len(store._dirs) == 1
        with time_limit(5):
            assert sorted(store) == own
            with pytest.raises(odb.ObjectNotFound):
                store.read(other.git.ids()[0])
        assert watch.events() == []
        watch.close()
    assert sum("resolves into the mount itself" in r.getMessage() for r in caplog.records) == 1
    # A store opened once the refusal is in force never reads it at all.
    watch = Watch(mountpoint)
    with odb.open(repo.path) as store:
        assert len(store._dirs) == 1 and sorted(store) == own
    assert watch.events() == []
    watch.close()


def test_pack_that_is_a_symlink_into_the_mount(repo_copy, mountpoint):
    repo = repo_copy("idx-v2")
    ids = repo.git.ids()
    (pack,) = repo.git.packs()
    with odb.open(repo.path) as store:
        shutil.move(pack, mountpoint / pack.name)
        pack.symlink_to(mountpoint / pack.name)
        watch = refuse_and_watch(store, mountpoint)
        with time_limit(5):
            with pytest.raises(odb.OdbError):
                store.read(ids[0])
            store.refresh()
        assert watch.events() == []
        watch.close()


def test_objects_directory_moved_into_the_mount(repo_copy, mountpoint, caplog):
    """The repository's pack/ replaced by a symlink into the mount while it is up: the next refresh
    drops that objects directory, with one warning, and reads nothing there."""
    repo = repo_copy("idx-v2")
    pack_dir = repo.objects_dir / "pack"
    with odb.open(repo.path) as store:
        store.refuse_under(mountpoint)
        shutil.move(pack_dir, mountpoint / "pack")
        pack_dir.symlink_to(mountpoint / "pack")
        watch = Watch(mountpoint)
        with time_limit(5):
            store.refresh()
            assert list(store) == []
        assert watch.events() == []
        watch.close()
    assert any("resolves into the mount itself" in r.getMessage() for r in caplog.records)


def test_mount_point_at_the_repository_itself(repo_copy, refusal, caplog):
    """Mounting over the repository: every source lies below the mount point."""
    repo = repo_copy("midx")
    with odb.open(repo.path) as store:
        store.refuse_under(repo.path)
        assert store._dirs == [] and list(store) == []
    assert any("resolves into the mount itself" in r.getMessage() for r in caplog.records)


def test_refusal_costs_the_hot_path_nothing_it_can_avoid(fixture_repo, mountpoint, monkeypatch):
    """No realpath per read: reading packed objects makes no lstat at all once the store is
    warm, and a loose object costs no more than its bucket's and its own open."""
    repo = fixture_repo("midx")
    with odb.open(repo.path) as store:
        store.refuse_under(mountpoint)
        ids = repo.git.ids()
        for oid in ids:
            store.read(oid)
        calls = []
        real_lstat = os.lstat
        monkeypatch.setattr(os, "lstat", lambda *a, **k: calls.append(a) or real_lstat(*a, **k))
        for oid in ids:
            store.read(oid)
            store.read_size(oid)
        for implementation in available():
            with using(implementation):
                store.read_sizes(b"".join(bytes.fromhex(oid) for oid in ids))
        assert calls == []


def test_a_store_whose_objects_directory_leads_into_the_refused_one_lists_nothing(repo_copy, tmp_path, refusal):
    """Every objects directory refused (the repository's own lies below the refused path): the
    store lists no bucket and no id, and a read is "not found", never an error of its own."""
    repo = repo_copy("midx")
    oid = repo.git.ids()[0]
    with odb.open(repo.path) as store:
        store.refuse_under(repo.path)
        assert store._dirs == []
        assert store.nonempty_buckets() == []
        assert store.bucket_ids(int(oid[:2], 16)) == b"" and not store.bucket_has_objects(int(oid[:2], 16))
        with pytest.raises(odb.ObjectNotFound):
            store.read(oid)
