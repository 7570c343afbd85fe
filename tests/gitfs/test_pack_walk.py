"""A walk of the whole mount is served in pack order (gitfs/engine/pack_walk.py): what it reads is
git's, byte for byte, whatever order the pass pushes in, and the mount says that it served it so.

The repository here is small, so the mount is told to take any walk of a bucket for a walk of
the whole mount (GITFS_PACK_WALK_MIN_OBJECTS=1; the default waits for a bucket of 256 objects).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mounting import git_for, wait_until

NEEDLE = b"needle-in-the-pack-walk"
WALK_ENV = {"GITFS_PACK_WALK_MIN_OBJECTS": "1"}


@pytest.fixture(scope="module")
def walk_repo(tmp_path_factory) -> Path:
    """About 5,000 objects (20 a bucket): blobs that are edits of each other (so the packs hold
    delta chains), their trees and commits, in two packs under a multi-pack-index, and loose
    objects beside them."""
    repo = tmp_path_factory.mktemp("walk") / "walk.git"
    git = git_for(repo)
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    rng = random.Random(7)
    lines = [b"line %d %s\n" % (i, rng.randbytes(12).hex().encode()) for i in range(400)]
    stream = []
    mark = 0
    for commit in range(3):
        files = []
        for i in range(800):
            body = list(lines)
            body[rng.randrange(len(body))] = b"edit %d %d\n" % (commit, i)
            if i % 97 == 0:
                body.insert(rng.randrange(len(body)), NEEDLE + b"\n")
            data = b"".join(body[: 100 + i % 300])
            mark += 1
            stream.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
            files.append((mark, b"d%d/f%d" % (i % 40, i)))
        stream.append(b"commit refs/heads/main\ncommitter T <t@t> %d +0000\ndata 2\nc\n" % (1600000000 + commit))
        if commit == 2:  # the first commit of the second import
            stream.append(b"from refs/heads/main^0\n")
        stream.extend(b"M 100644 :%d %s\n" % f for f in files)
        stream.append(b"\n")
        if commit == 1:
            git.run_bytes("fast-import", "--quiet", input=b"".join(stream))
            git.run("repack", "-adq")
            stream = []
    git.run_bytes("fast-import", "--quiet", input=b"".join(stream))  # a second pack
    git.run("multi-pack-index", "write")
    loose = repo.parent / "loose"
    loose.mkdir()
    for i in range(300):  # and loose objects
        (loose / str(i)).write_text(f"loose {i}\n" + ("x" * i))
    git.run("hash-object", "-w", "--stdin-paths", input="".join(f"{loose / str(i)}\n" for i in range(300)))
    return repo


def walk_in_listing_order(root: Path) -> dict[str, str]:
    """What `grep -r` does: each bucket listed, then each of its files read, in listing order;
    returns id -> sha1 of the bytes read."""
    read = {}
    for bucket in sorted(os.listdir(root)):
        for name in os.listdir(root / bucket):
            read[bucket + name] = hashlib.sha1((root / bucket / name).read_bytes()).hexdigest()
    return read


def status(path: Path) -> dict:
    return json.loads(os.getxattr(path, "user.gitfs.status"))


def settled(path: Path) -> dict:
    """The mount's request counts, once the pass has stopped (its counts the same twice, 0.5 s
    apart; reading the status is a request of its own)."""
    seen = []

    def still() -> bool:
        time.sleep(0.5)
        seen.append(status(path)["requests"])
        walk = [{k: v for k, v in counts.items() if k.startswith("walk")} for counts in seen[-2:]]
        return len(seen) > 1 and walk[0] == walk[1]

    assert wait_until(still, 30), seen[-2:]
    return seen[-1]


def test_a_walk_of_the_whole_mount_reads_gits_bytes_in_pack_order(mount, walk_repo):
    git = git_for(walk_repo)
    expected = {oid: hashlib.sha1(data).hexdigest() for oid, _, data in git.contents(git.ids())}
    m = mount(walk_repo, env=WALK_ENV)
    read = walk_in_listing_order(m.path)
    assert read == expected
    counts = status(m.path)["requests"]
    assert counts.get("walk windows", 0) >= 3, counts  # 05-0c, 0d-2c, 2d-ac, ...
    # Most objects came as pages pushed by the pass, without a READ of their own.
    assert counts.get("walk pushed", 0) > len(expected) // 2, counts
    assert counts.get("read", 0) < len(expected) // 2, counts


def test_grep_of_the_whole_mount_finds_what_git_finds(mount, walk_repo):
    git = git_for(walk_repo)
    holding = sorted(oid for oid, _, data in git.contents(git.ids()) if NEEDLE in data)
    assert len(holding) > 10
    m = mount(walk_repo, env=WALK_ENV)
    found = subprocess.run(["grep", "-r", "-l", "-F", NEEDLE.decode(), str(m.path)], capture_output=True,
                           text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    names = sorted(Path(line).parent.name + Path(line).name for line in found.stdout.splitlines())
    assert names == holding
    assert status(m.path)["requests"].get("walk pushed", 0) > 0


def read_buckets(root: Path, buckets: list[str]) -> None:
    os.listdir(root)  # as the shell does for `grep -r MNT/0[0-5]`
    for bucket in buckets:
        for name in os.listdir(root / bucket):
            (root / bucket / name).read_bytes()


def test_a_walk_of_a_few_buckets_reads_few_ahead(mount, walk_repo):
    """A walk of four buckets is left to read-ahead; one that reads on to the end of the fifth has
    the pass read the next window of eight (05-0c) and nothing more, though the walk goes on into
    05: windows grow only while the walker keeps up."""
    ids = git_for(walk_repo).ids()
    m = mount(walk_repo, env=WALK_ENV)
    read_buckets(m.path, ["00", "01", "02", "03"])
    assert "walk windows" not in settled(m.path)
    read_buckets(m.path, ["04", "05"])
    counts = settled(m.path)
    assert counts.get("walk windows", 0) == 1, counts
    assert 0 < counts.get("walk pushed", 0) <= sum(1 for oid in ids if 0x05 <= int(oid[:2], 16) < 0x0D), counts


def test_several_walkers_at_once_read_gits_bytes(mount, walk_repo):
    """Walkers that start together (one is taken for the walk, the others read behind or ahead of
    it) and a reader of random objects all read git's bytes."""
    git = git_for(walk_repo)
    expected = {oid: hashlib.sha1(data).hexdigest() for oid, _, data in git.contents(git.ids())}
    m = mount(walk_repo, env=WALK_ENV)
    walks, results, errors = [], [], []

    def walk():
        try:
            walks.append(walk_in_listing_order(m.path))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def random_reads():
        try:
            ids = random.Random(3).sample(sorted(expected), 400)
            results.append({oid: hashlib.sha1((m.path / oid[:2] / oid[2:]).read_bytes()).hexdigest() for oid in ids})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=walk) for _ in range(3)] + [threading.Thread(target=random_reads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert len(walks) == 3 and len(results) == 1
    assert all(got == expected for got in walks)
    assert results[0] == {oid: expected[oid] for oid in results[0]}


def test_unmounting_during_a_walk_is_clean(mount, walk_repo):
    """The mount goes away while the pass lists and pushes: no hang, and no traceback in the log
    (the fixture checks the log at the end)."""
    m = mount(walk_repo, env=WALK_ENV)
    walker = subprocess.Popen(["grep", "-r", "-q", "-F", "zzqqzz-no-match", str(m.path)])
    assert wait_until(lambda: status(m.path)["requests"].get("walk windows", 0) >= 1, 30)
    walker.kill()
    walker.wait()
    m.unmount()
    assert "pack order failed" not in m.log()


def read_last_first(root: Path, threads: int) -> dict[str, str]:
    """ripgrep's walk: each bucket's entries taken last first, by threads that share them."""
    read = {}

    def one(path: Path) -> None:
        read[path.parent.name + path.name] = hashlib.sha1(path.read_bytes()).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for bucket in sorted(os.listdir(root)):
            names = os.listdir(root / bucket)
            list(pool.map(one, [root / bucket / name for name in reversed(names)]))
    return read


@pytest.mark.parametrize("threads", [1, 4])
def test_a_walk_in_no_order_is_served_too(mount, walk_repo, threads):
    """No reader walks in listing order here, so read-ahead sees no walk. Once five buckets were
    half read, the pass reads every bucket not yet walked in pack order (one reader, last first,
    has only that trigger), and what the readers read is git's."""
    git = git_for(walk_repo)
    expected = {oid: hashlib.sha1(data).hexdigest() for oid, _, data in git.contents(git.ids())}
    m = mount(walk_repo, env=WALK_ENV)
    assert read_last_first(m.path, threads) == expected
    counts = status(m.path)["requests"]
    assert counts.get("walk windows", 0) >= 1 and counts.get("walk pushed", 0) > 0, counts


def let_pages_go(root: Path) -> None:
    """The kernel drops every object file's pages (as memory pressure would)."""
    for bucket in os.listdir(root):
        for name in os.listdir(root / bucket):
            fd = os.open(root / bucket / name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def test_a_walk_after_the_last_one_is_served_as_the_first(mount, walk_repo):
    """Once the last walk's windows are read, a new walk (listing the root again) gets windows
    of its own: the buckets it walks are not left without read-ahead or pass."""
    git = git_for(walk_repo)
    expected = {oid: hashlib.sha1(data).hexdigest() for oid, _, data in git.contents(git.ids())}
    m = mount(walk_repo, env=WALK_ENV)
    assert walk_in_listing_order(m.path) == expected
    first = settled(m.path)
    assert first.get("walk windows", 0) >= 1, first
    let_pages_go(m.path)
    assert walk_in_listing_order(m.path) == expected
    again = settled(m.path)
    assert again.get("walk windows", 0) > first["walk windows"], again
    assert again.get("walk pushed", 0) > first["walk pushed"], again
