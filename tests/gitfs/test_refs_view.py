"""gitfs/namespaces/refs_view.py without a mount: one read of every ref per refresh, answers from the table."""

from __future__ import annotations

import subprocess
import time

import odb
from gitfs.namespaces.refs_view import RefLink, RefsDir, RefsView


def git(repo, *args, input=None):
    return subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, check=True).stdout


def test_lookups_and_listings_read_the_refs_once_per_refresh(tmp_path):
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    blob = git(repo, "hash-object", "-w", "--stdin", input=b"x").decode().strip()
    tree = git(repo, "mktree", input=f"100644 blob {blob}\tf\n".encode()).decode().strip()
    commit = git(repo, "commit-tree", "-m", "m", tree).decode().strip()
    script = "".join(f"create refs/tags/t{i:03d} {commit}\n" for i in range(300))
    git(repo, "update-ref", "--stdin", input=(script + f"create refs/heads/a/b {commit}\n").encode())
    git(repo, "pack-refs", "--all")
    git(repo, "update-ref", "refs/heads/loose", commit)
    git(repo, "symbolic-ref", "HEAD", "refs/heads/a/b")
    view = RefsView(odb.RefStore(repo), odb.SHA1, fresh_for=3600)
    time.sleep(0.2)  # past odb.refs.store.RACY_NS: the files' mtimes can be trusted

    top = view.list(RefsDir(""))
    assert [name for name, _, _ in top] == [b"HEAD", b"heads", b"tags"]
    assert view.reads == 1
    table = view.current()
    for i in range(300):
        assert view.find(table, RefsDir("tags"), b"t%03d" % i) == RefLink(f"tags/t{i:03d}")
        assert view.known_target(RefLink(f"tags/t{i:03d}")) == f"../../{commit[:2]}/{commit[2:]}".encode()
    assert view.find(table, RefsDir("heads"), b"a") == RefsDir("heads/a")
    assert view.known_target(RefLink("HEAD")) == b"heads/a/b"  # a symref's first step
    assert view.known_target(RefLink("heads/a/b")) == f"../../../{commit[:2]}/{commit[2:]}".encode()
    for _ in range(100):  # a walk of many directories: nothing changed, nothing read again
        assert [name for name, _, _ in view.list(RefsDir("heads"))] == [b"a", b"loose"]
    # The first read finds which directories to watch; the next one can be trusted from then on.
    assert (view.reads, view.checks) == (2, 99)  # none per lookup or target either

    # A miss reads again (a ref just made is found), once for concurrent misses.
    git(repo, "update-ref", "refs/tags/new", commit)
    marker = view.marker()
    assert view.find(view.current(), RefsDir("tags"), b"new") is None
    assert view.lookup(RefsDir("tags"), b"new", marker) == RefLink("tags/new")
    assert view.lookup(RefsDir("tags"), b"new", marker) == RefLink("tags/new")
    assert view.reads == 3
    # So does a listing once packed-refs is rewritten.
    git(repo, "pack-refs", "--all")
    git(repo, "update-ref", "-d", "refs/tags/t001")
    assert b"t001" not in [name for name, _, _ in view.list(RefsDir("tags"))]
    # A ref that went is gone from its link's target once the table is old.
    git(repo, "update-ref", "-d", "refs/heads/loose")
    view.fresh_for = 0
    assert view.target(RefLink("heads/loose")) is None
    assert view.target(RefLink("tags/t007")) == f"../../{commit[:2]}/{commit[2:]}".encode()
