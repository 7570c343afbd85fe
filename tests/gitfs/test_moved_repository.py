"""A repository renamed while mounted is followed, as an open directory is; one deleted is
reported as gone (issue 17, defect 5)."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest

from mounting import git_for, run_gitfs


def status_of(path) -> dict:
    return json.loads(os.getxattr(path, "user.gitfs.status"))


@pytest.mark.parametrize("name", ["midx", "refs"])
def test_a_renamed_repository_still_reads_whole(fixtures_root, mount, tmp_path, name):
    repo = tmp_path / "repo.git"
    shutil.copytree(fixtures_root / name, repo, symlinks=True)
    m = mount(repo)
    before = sorted(os.listdir(m.path))
    moved = tmp_path / "moved.git"
    repo.rename(moved)
    git = git_for(moved)
    objects = git.objects()
    # The root and every bucket list as before, every object reads git's bytes, and the
    # refs read where the repository is now.
    assert sorted(os.listdir(m.path)) == before
    for oid, kind, data in git.contents(sorted(objects)):
        assert (m.path / oid[:2] / oid[2:]).read_bytes() == data, oid
    if name == "refs":
        head = git.run("rev-parse", "HEAD").strip()
        assert os.readlink(m.path / ".refs" / "HEAD") and (m.path / ".refs" / "HEAD").read_bytes() == git.read(head)[1]
    facts = status_of(m.path)
    git_dir = git.run("rev-parse", "--absolute-git-dir").strip()
    assert facts["repository_now"] == {"path": git_dir, "gone": None}
    done = run_gitfs("status", str(m.path))
    assert done.returncode == 0 and "healthy" in done.stdout


def test_a_deleted_repository_is_reported_gone(fixtures_root, mount, tmp_path):
    repo = tmp_path / "repo.git"
    shutil.copytree(fixtures_root / "loose", repo, symlinks=True)
    git = git_for(repo)
    objects = sorted(git.objects())
    m = mount(repo)
    shutil.rmtree(repo)
    done = run_gitfs("status", str(m.path))
    assert done.returncode != 0 and "repository gone" in done.stdout, done.stdout
    with pytest.raises(OSError) as e:
        (m.path / objects[0][:2] / objects[0][2:]).read_bytes()
    assert e.value.errno in (errno.EIO, errno.ENOENT)
    assert "the repository is gone" in m.log()
