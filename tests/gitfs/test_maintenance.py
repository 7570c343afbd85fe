"""git maintenance while the mount is read: repack -ad, gc --prune=now, multi-pack-index write and
new commits run in a loop while readers walk the whole mount. Every read must give the bytes that
hash to the object's id, or ENOENT for an object that really was pruned; nothing else, and the
mount stays up."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from maintenance import MountView, run_under_maintenance
from mounting import mounted

SECONDS = float(os.environ.get("GITFS_MAINTENANCE_SECONDS", "20"))
READERS = 3


# The fixtures are small: the pass that reads a whole-mount walk in pack order
# (gitfs/engine/pack_walk.py) is told to take them as a big repository's.
PACK_WALK = {"GITFS_PACK_WALK_MIN_OBJECTS": "1"}


@pytest.mark.parametrize("name, env", [("midx", None), ("loose", None), ("midx", PACK_WALK)],
                         ids=["midx", "loose", "midx-pack-walk"])
def test_reading_through_git_maintenance(repo_copy, mount, name, env):
    repo = repo_copy(name)
    m = mount(repo.path, env=env)
    maintenance, readers = run_under_maintenance(repo, [MountView(m.path)] * READERS, SECONDS)
    assert maintenance.error is None, maintenance.error

    bad = [b for r in readers for b in r.bad]
    if bad:
        named = [line for line in m.log().splitlines() if any(b[:40] in line for b in bad)]
        pytest.fail(f"{len(bad)} bad reads, first: {bad[:5]}; the mount logged: {named[:5]}")
    # ENOENT only for what gc could prune: the unreachable blobs this test wrote.
    final = set(repo.git.ids())
    wrongly_missing = {oid for r in readers for oid in r.enoent} - maintenance.unreachable
    assert not wrongly_missing, f"ENOENT for reachable objects: {sorted(wrongly_missing)[:5]}"
    total = Counter()
    for r in readers:
        total.update(r.results)
    assert total["ok"] > 0 and maintenance.steps["gc --prune=now"] > 0, (total, maintenance.steps)
    if env is PACK_WALK:
        requests = json.loads(os.getxattr(m.path, "user.gitfs.status"))["requests"]
        assert requests.get("walk pushed", 0) > 0, requests  # the pass did read under maintenance
    print(f"\n{name}: {dict(total)}; maintenance steps {dict(maintenance.steps)}")

    # Once git is quiet, a re-read shows exactly git's objects, each byte-exact.
    assert mounted(m.path)
    listed = {b + n for b in os.listdir(m.path) for n in os.listdir(m.path / b)}
    assert listed == final
    for oid, kind, data in repo.git.contents(sorted(final)):
        assert (m.path / oid[:2] / oid[2:]).read_bytes() == data, oid
