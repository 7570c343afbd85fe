"""End-to-end: a directory re-read shows what git did to the repository since the last one."""

from __future__ import annotations

import os

import pytest

from oracle import Git


def listing(mountpoint) -> set[str]:
    """Every id the mount lists, re-reading the root and every bucket."""
    return {bucket + name for bucket in os.listdir(mountpoint) for name in os.listdir(mountpoint / bucket)}


def assert_matches_git(mountpoint, git: Git) -> None:
    objects = git.objects()
    assert listing(mountpoint) == set(objects)
    for oid, kind, data in git.contents(sorted(objects)):
        path = mountpoint / oid[:2] / oid[2:]
        assert os.stat(path).st_size == len(data)
        assert path.read_bytes() == data, oid


def commit(git: Git, work, name: str, text: str) -> str:
    (work / name).write_text(text)
    git.run("add", name)
    git.run("commit", "-q", "-m", f"add {name}")
    return git.run("rev-parse", f"HEAD:{name}").strip()


def test_new_commit_appears_on_reread(repo_copy, mount):
    repo = repo_copy("loose")
    m = mount(repo.path)
    before = listing(m.path)
    blob = commit(repo.git, repo.path, "fresh.txt", "a line written after mounting\n")
    assert blob not in before
    assert_matches_git(m.path, repo.git)
    assert (m.path / blob[:2] / blob[2:]).read_text() == "a line written after mounting\n"


def test_repack_keeps_every_object(repo_copy, mount):
    repo = repo_copy("bare")
    m = mount(repo.path)
    assert_matches_git(m.path, repo.git)
    repo.git.run("repack", "-q", "-d")
    assert_matches_git(m.path, repo.git)


def test_repack_ad_with_a_rewritten_midx(repo_copy, mount):
    repo = repo_copy("midx")
    m = mount(repo.path)
    assert_matches_git(m.path, repo.git)
    old_packs = set(repo.git.packs())
    commit(repo.git, repo.path, "more.txt", "one more object\n")
    repo.git.run("repack", "-q", "-a", "-d")
    repo.git.run("multi-pack-index", "write")
    assert not old_packs & set(repo.git.packs()), "repack -ad should replace every pack"
    assert_matches_git(m.path, repo.git)


def test_gc_prune_removes_unreachable_objects(repo_copy, mount):
    repo = repo_copy("bare")
    doomed = repo.git.run("hash-object", "-w", "--stdin", input="nobody refers to me\n").strip()
    m = mount(repo.path)
    path = m.path / doomed[:2] / doomed[2:]
    assert path.read_text() == "nobody refers to me\n"
    assert doomed in listing(m.path)

    repo.git.run("gc", "-q", "--prune=now")
    assert repo.git.headers([doomed])[doomed] is None
    assert doomed not in listing(m.path)
    with pytest.raises(FileNotFoundError):
        path.read_bytes()
    assert_matches_git(m.path, repo.git)


def test_gc_prune_removes_unreachable_packed_objects(repo_copy, mount):
    """The object lives in a pack that gc deletes: the mount must not go on serving it from the old pack."""
    repo = repo_copy("bare")
    doomed = repo.git.run("hash-object", "-w", "--stdin", input="a packed orphan\n").strip()
    pack_dir = repo.git.git_dir / "objects" / "pack"
    repo.git.run("pack-objects", "-q", str(pack_dir / "pack"), input=doomed + "\n")
    repo.git.run("prune-packed")
    assert doomed not in repo.git.loose_ids()
    m = mount(repo.path)
    path = m.path / doomed[:2] / doomed[2:]
    assert path.read_text() == "a packed orphan\n"

    repo.git.run("gc", "-q", "--prune=now")
    assert repo.git.headers([doomed])[doomed] is None
    assert doomed not in listing(m.path)
    with pytest.raises(FileNotFoundError):
        path.read_bytes()
    assert_matches_git(m.path, repo.git)
