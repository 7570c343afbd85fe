"""odb.history.FirstParents against `git rev-list --first-parent`, walked in pieces."""

from __future__ import annotations

import subprocess

import pytest

from limits import time_limit
from oracle import git_env
import odb
from odb.history import FirstParents


def committer_dates(git, rev: str) -> list[int]:
    return [int(x) for x in git.run("log", "--first-parent", "--format=%ct", rev).split()]


@pytest.mark.parametrize("name,rev", [("history", "main"), ("history", "v1.0-outer"), ("history", "feature"),
                                      ("refs", "many"), ("refs", "huge")])
def test_walks_are_rev_list_first_parent(fixture_repo, name, rev):
    repo = fixture_repo(name)
    ids = repo.git.run("rev-list", "--first-parent", rev).split()
    with odb.open(repo.path) as store:
        start = bytes.fromhex(repo.git.rev_parse(rev + "^{commit}"))
        walk = FirstParents(store, start)
        assert walk.extend(3) == 3 and not walk.done  # only as far as asked
        assert walk.extend(2) == 3
        for step in (10, 100, 10_000_000):
            walk.extend(step)
        assert walk.done and walk.error is None
        assert [walk.oid(k).hex() for k in range(len(walk))] == ids
        assert list(walk.seconds) == committer_dates(repo.git, rev)


def test_a_shallow_history_ends_where_the_clone_does(fixture_repo, tmp_path):
    source = fixture_repo("history")
    clone = tmp_path / "shallow.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--depth", "3", "--branch", "main",
                    f"file://{source.path}", str(clone)], check=True, env=git_env(), capture_output=True)
    ids = subprocess.run(["git", f"--git-dir={clone}", "rev-list", "--first-parent", "main"], check=True,
                         capture_output=True, text=True, env=git_env()).stdout.split()
    assert len(ids) == 3
    with odb.open(clone) as store, time_limit(10):
        walk = FirstParents(store, bytes.fromhex(ids[0]))
        walk.extend(1000)
        assert walk.done and [walk.oid(k).hex() for k in range(len(walk))] == ids
        assert isinstance(walk.error, odb.ObjectNotFound)


def test_a_missing_start_is_not_found(fixture_repo):
    with odb.open(fixture_repo("history").path) as store:
        with pytest.raises(odb.ObjectNotFound):
            FirstParents(store, b"\x01" * 20).extend(1)


def test_reflog_lines_git_cannot_read_are_skipped():
    from odb.refs.reflog import parse_line
    a, b = "1" * 40, "2" * 40
    good = f"{a} {b} C O Mitter <c@x> 1577836800 +0130\tcommit: x".encode()
    entry = parse_line(good, 40)
    assert (entry.old, entry.new, entry.seconds, entry.offset_minutes, entry.message) == \
        (bytes.fromhex(a), bytes.fromhex(b), 1577836800, 90, "commit: x")
    for bad in (b"", good[:50], good.replace(b"<c@x>", b"c@x"), good.replace(b"1577836800", b"x"),
                good.replace(b"1577836800", b"9" * 5000), b"z" + good[1:], good.replace(b" ", b"", 1)):
        assert parse_line(bad, 40) is None, bad[:60]
    assert parse_line(good.replace(b"+0130", b"+" + b"9" * 5000), 40).offset_minutes == 0
