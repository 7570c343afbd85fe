"""git maintenance while the mount is read: repack -ad, gc --prune=now, multi-pack-index write and
new commits run in a loop while readers walk the whole mount. Every read must give the bytes that
hash to the object's id, or ENOENT for an object that really was pruned; nothing else, and the
mount stays up."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mounting import mounted

SECONDS = float(os.environ.get("GITFS_MAINTENANCE_SECONDS", "20"))
READERS = 3
KINDS = (b"blob", b"tree", b"commit", b"tag")


def hashes_to(oid: str, data: bytes) -> bool:
    """Whether data is the content of object oid (SHA-1), whatever its kind: no oracle can lie."""
    return any(hashlib.sha1(b"%s %d\0" % (k, len(data)) + data).hexdigest() == oid for k in KINDS)


class Maintenance(threading.Thread):
    """Runs git maintenance on the repository until stopped; records the unreachable objects it
    wrote, the only ones gc may prune."""

    def __init__(self, repo):
        super().__init__(daemon=True)
        self.repo = repo
        self.git = repo.git
        self.stop = threading.Event()
        self.unreachable: set[str] = set()
        self.steps = Counter()
        self.error: BaseException | None = None

    def commit(self, n: int) -> None:
        (self.repo.path / f"maint-{n % 7}.txt").write_text(f"maintenance round {n}\n" * (n % 50 + 1))
        self.git.run("add", "-A")
        self.git.run("commit", "-q", "-m", f"maintenance round {n}")

    def unreachable_blob(self, n: int) -> None:
        oid = self.git.run("hash-object", "-w", "--stdin", input=f"garbage {n} that nothing references\n")
        self.unreachable.add(oid.strip())

    def run(self) -> None:
        steps = [
            ("commit", self.commit),
            ("unreachable", self.unreachable_blob),
            ("repack -ad", lambda n: self.git.run("repack", "-q", "-a", "-d")),
            ("midx write", lambda n: self.git.run("multi-pack-index", "write")),
            ("commit", self.commit),
            ("repack -d", lambda n: self.git.run("repack", "-q", "-d")),
            ("unreachable", self.unreachable_blob),
            ("gc --prune=now", lambda n: self.git.run("-c", "gc.autoDetach=false", "gc", "-q", "--prune=now")),
            ("midx write", lambda n: self.git.run("multi-pack-index", "write")),
            ("commit", self.commit),
            ("repack --write-midx", lambda n: self.git.run("repack", "-q", "-d", "--write-midx")),
        ]
        n = 0
        try:
            while not self.stop.is_set():
                name, step = steps[n % len(steps)]
                step(n)
                self.steps[name] += 1
                n += 1
        except BaseException as e:  # reported by the test
            self.error = e


class Reader(threading.Thread):
    """Walks the whole mount again and again, checking each read."""

    def __init__(self, mnt: Path, maintenance: Maintenance, seed: int):
        super().__init__(daemon=True)
        self.mnt = mnt
        self.maintenance = maintenance
        self.seed = seed
        self.results = Counter()
        self.bad: list[str] = []
        self.enoent: set[str] = set()

    def run(self) -> None:
        try:
            while not self.maintenance.stop.is_set():
                self.walk()
        except BaseException as e:
            self.bad.append(f"reader crashed: {e!r}")

    def walk(self) -> None:
        buckets = sorted(os.listdir(self.mnt))
        if self.seed % 2:
            buckets.reverse()
        for bucket in buckets:
            try:
                names = os.listdir(self.mnt / bucket)
            except FileNotFoundError:
                self.results["bucket gone"] += 1  # emptied by gc between the two listings
                continue
            for name in names:
                self.read(bucket + name)
            if self.maintenance.stop.is_set():
                return

    def read(self, oid: str) -> None:
        path = self.mnt / oid[:2] / oid[2:]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.results["ENOENT"] += 1
            self.enoent.add(oid)
            return
        except OSError as e:
            self.bad.append(f"{oid}: {errno.errorcode.get(e.errno, e.errno)} {e}")
            return
        if hashes_to(oid, data):
            self.results["ok"] += 1
        else:
            self.bad.append(f"{oid}: wrong bytes ({len(data)} bytes)")


@pytest.mark.parametrize("name", ["midx", "loose"])
def test_reading_through_git_maintenance(repo_copy, mount, name):
    repo = repo_copy(name)
    m = mount(repo.path)
    maintenance = Maintenance(repo)
    readers = [Reader(m.path, maintenance, k) for k in range(READERS)]
    for r in readers:
        r.start()
    maintenance.start()
    time.sleep(SECONDS)
    maintenance.stop.set()
    maintenance.join(120)
    for r in readers:
        r.join(120)
    assert not maintenance.is_alive() and not any(r.is_alive() for r in readers), "a thread hung"
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
    print(f"\n{name}: {dict(total)}; maintenance steps {dict(maintenance.steps)}")

    # Once git is quiet, a re-read shows exactly git's objects, each byte-exact.
    assert mounted(m.path)
    listed = {b + n for b in os.listdir(m.path) for n in os.listdir(m.path / b)}
    assert listed == final
    for oid, kind, data in repo.git.contents(sorted(final)):
        assert (m.path / oid[:2] / oid[2:]).read_bytes() == data, oid
