"""gitfs/namespaces/log_view.py without a mount: names, lookups and walks over the history fixture."""

from __future__ import annotations

import pytest

import odb
from gitfs.namespaces.log_view import LogLink, LogView, entry_name, link_target, position_of


@pytest.fixture(scope="module")
def view(fixture_repo):
    repo = fixture_repo("history")
    store = odb.open(repo.path)
    yield LogView(store, odb.RefStore(repo.git_dir, None, store.format)), repo
    store.close()


def test_names_sort_in_history_order_and_parse_back():
    oid = bytes.fromhex("1a2b3c4d5e6f" + "00" * 14)
    names = [entry_name(k, oid) for k in (0, 1, 9, 10, 99_999, 9_999_999)]
    assert names[0] == b"0000000-1a2b3c4d5e6f" and names == sorted(names)
    assert [position_of(n) for n in names] == [0, 1, 9, 10, 99_999, 9_999_999]
    assert entry_name(10_000_000, oid) == b"10000000-1a2b3c4d5e6f" and position_of(b"10000000-1a2b3c4d5e6f") == 10_000_000
    for bad in (b"0000001", b"000001-1a2b3c4d5e6f", b"00000001-1a2b3c4d5e6f", b"0000001-1a2b", b"x000001-1a2b3c4d5e6f",
                b"", b"-", b"+000001-1a2b3c4d5e6f"):
        assert position_of(bad) is None, bad
    assert link_target(oid) == b"../../1a/2b3c4d5e6f" + b"00" * 14


def test_resolve_and_lookup_follow_git(view):
    logs, repo = view
    ids = repo.git.run("rev-list", "--first-parent", "main~2").split()
    directory = logs.resolve(b"heads:main~2")
    assert directory.commit.hex() == ids[0]
    assert directory.mtime_ns == int(repo.git.run("log", "-1", "--format=%ct", "main~2")) * 10**9
    last = len(ids) - 1
    found = logs.lookup(directory, entry_name(last, bytes.fromhex(ids[last])))
    assert isinstance(found, LogLink) and found.commit.hex() == ids[last]
    assert logs.lookup(directory, entry_name(last + 1, bytes.fromhex(ids[last]))) is None
    assert logs.lookup(directory, entry_name(1, bytes.fromhex(ids[2]))) is None  # right place, wrong id
    with pytest.raises(odb.ObjectNotFound):
        logs.resolve(b"tree-tag")  # no commit: no history
    with pytest.raises(odb.ObjectNotFound):
        logs.resolve(b"\xff\xfe")
