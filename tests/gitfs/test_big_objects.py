"""Big objects through a real mount: many readers at once, at any offsets, get every byte.

Objects over a quarter of --cache-size are streamed (gitfs/engine/streams.py). Here the cache is 1 MiB,
so these 6 MiB blobs stream as 100 MiB ones do under the default 256 MiB."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from mounting import git_for

BLOB_SIZE = 6 << 20
LONG_SIZE = 24 << 20  # several stream windows (4 MiB) long


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """Six random blobs: three packed whole (core.bigFileThreshold, as `git add` of a big file
    does), three loose."""
    repo = tmp_path_factory.mktemp("big") / "big.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    blobs = {}
    for i in range(6):
        data = random.Random(i).randbytes(BLOB_SIZE)
        source = repo.parent / f"m{i}.bin"
        source.write_bytes(data)
        threshold = "1m" if i < 3 else "512m"
        oid = subprocess.run(["git", "--git-dir", str(repo), "-c", f"core.bigFileThreshold={threshold}",
                              "hash-object", "-w", str(source)], check=True, capture_output=True,
                             text=True).stdout.strip()
        blobs[oid] = data
    return repo, blobs


@pytest.fixture(scope="module")
def long_blob(big_repo) -> tuple[str, bytes]:
    repo, _ = big_repo
    data = random.Random(99).randbytes(LONG_SIZE)
    source = repo.parent / "long.bin"
    source.write_bytes(data)
    oid = subprocess.run(["git", "--git-dir", str(repo), "-c", "core.bigFileThreshold=1m", "hash-object", "-w",
                          str(source)], check=True, capture_output=True, text=True).stdout.strip()
    return oid, data


def cat_all_at_once(paths: list[Path], out: Path) -> list[tuple[int, str]]:
    """One `cat` process per path, all started before any is waited for: (status, sha1 of output)."""
    procs = []
    for k, path in enumerate(paths):
        target = out / f"out{k}"
        procs.append((subprocess.Popen(["cat", str(path)], stdout=target.open("wb")), target))
    results = []
    for proc, target in procs:
        status = proc.wait(timeout=120)
        results.append((status, hashlib.sha1(target.read_bytes()).hexdigest()))
    return results


def test_more_big_objects_at_once_than_the_mount_keeps_come_back_whole(big_repo, mount, tmp_path):
    """Issue 17, defect 1: six readers (twice each) of six big objects; evicting a stream
    truncated reads in flight, and `cat` exited 0 with a short copy."""
    repo, blobs = big_repo
    m = mount(repo, "--cache-size", "1M")
    want = {oid: hashlib.sha1(data).hexdigest() for oid, data in blobs.items()}
    paths = [m.path / oid[:2] / oid[2:] for oid in blobs] * 2
    for status, digest in cat_all_at_once(paths, tmp_path):
        assert status == 0
    results = cat_all_at_once(paths, tmp_path)
    assert results == [(0, want[p.parent.name + p.name]) for p in paths]


def test_two_readers_of_one_big_object_far_apart_both_finish(big_repo, long_blob, mount, tmp_path):
    """Issue 17, defect 2: `cat` and `dd skip=` of one object at once. They shared one stream
    and each read restarted it from byte 0 for the other."""
    repo, _ = big_repo
    m = mount(repo, "--cache-size", "1M")
    oid, data = long_blob
    path = m.path / oid[:2] / oid[2:]
    skip = len(data) // 2 // 4096
    dd_out, cat_out = tmp_path / "dd", tmp_path / "cat"
    dd = subprocess.Popen(["dd", f"if={path}", f"of={dd_out}", "bs=4096", f"skip={skip}", "status=none"])
    cat = subprocess.Popen(["cat", str(path)], stdout=cat_out.open("wb"))
    assert dd.wait(timeout=120) == 0 and cat.wait(timeout=120) == 0
    assert dd_out.read_bytes() == data[skip * 4096 :]
    assert cat_out.read_bytes() == data
    # Each reader inflated its own part about once: the second from byte 0 (no saved point was
    # ahead of it yet) to its offset, and on.
    streamed = json.loads(os.getxattr(m.path, "user.gitfs.status"))["streams"]
    assert streamed["opened"] == 1
    assert streamed["inflated"] <= 2 * len(data) + (4 << 20)
    # Random reads behind and ahead of each other, through a fresh file each time.
    rnd = random.Random(7)
    for _ in range(20):
        off = rnd.randrange(len(data))
        with path.open("rb", buffering=0) as f:
            f.seek(off)
            assert f.read(100_000) == data[off : off + 100_000]


def test_git_agrees_on_the_fixture(big_repo):
    repo, blobs = big_repo
    git = git_for(repo)
    for oid, data in list(blobs.items())[:2]:
        assert git.read(oid) == ("blob", data)
