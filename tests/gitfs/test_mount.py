"""End-to-end: fixture repositories mounted by the gitfs command, compared with git."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import stat
import subprocess
import threading
from pathlib import Path

import pytest

import odb
from gitfs import features
from mounting import git_for, mount_line
from oracle import colliding_prefixes


def natural_inode(hex_id: str) -> int:
    return int(hex_id[:16], 16) >> 1


def expected_layout(ids):
    buckets = {}
    for oid in ids:
        buckets.setdefault(oid[:2], []).append(oid[2:])
    return buckets


@pytest.mark.parametrize("name", ["bare", "midx", "loose", "sha256", "alt-chain", "deep-delta",
                                  "ref-delta", "idx-v1", "idx-v2-large", "empty"])
def test_listings_sizes_and_contents_match_git(fixtures_root, mount, name):
    repo = fixtures_root / name
    git = git_for(repo)
    objects = git.objects()
    m = mount(repo)
    store = odb.open(repo)

    layout = expected_layout(objects)
    assert sorted(os.listdir(m.path)) == sorted(layout)
    for bucket, names in layout.items():
        assert sorted(os.listdir(m.path / bucket)) == sorted(names)
        st = os.stat(m.path / bucket)
        # Modes are the repository's (odb/access.py; the fixtures live in a 0700 directory).
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == store.root_access().mode

    for oid, kind, data in git.contents(sorted(objects)):
        path = m.path / oid[:2] / oid[2:]
        st = os.stat(path)
        assert st.st_size == objects[oid][1] == len(data), oid
        access = store.stat(oid)[1]
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == access.mode and not st.st_mode & 0o222
        assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (access.uid, access.gid, access.mtime_ns)
        assert st.st_ino == natural_inode(oid)
        assert path.read_bytes() == data, oid


def test_ls_l_sizes_come_with_the_listing(fixtures_root, mount):
    """`ls -l` output (readdirplus attributes) agrees with git's sizes."""
    repo = fixtures_root / "midx"
    objects = git_for(repo).objects()
    m = mount(repo)
    bucket = max(expected_layout(objects).items(), key=lambda kv: len(kv[1]))[0]
    out = subprocess.run(["ls", "-ln", str(m.path / bucket)], capture_output=True, text=True, check=True).stdout
    seen = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        seen[bucket + fields[-1]] = int(fields[4])
    assert seen == {oid: size for oid, (_, size) in objects.items() if oid.startswith(bucket)}


def test_find_size_counts_match_git(fixtures_root, mount):
    repo = fixtures_root / "bare"
    objects = git_for(repo).objects()
    m = mount(repo)
    out = subprocess.run(["find", str(m.path), "-type", "f", "-size", "+1k"],
                         capture_output=True, text=True, check=True).stdout.split()
    # find -size +1k rounds up to KiB units: more than one unit means size > 1024.
    want = sorted(oid for oid, (_, size) in objects.items() if size > 1024)
    assert sorted(Path(p).parent.name + Path(p).name for p in out) == want


def test_abbreviated_names_resolve_when_unique(fixtures_root, mount):
    repo = fixtures_root / "ambiguous"
    git = git_for(repo)
    ids = git.ids()
    m = mount(repo)
    unique4 = [oid for oid in ids if oid[:4] not in colliding_prefixes(ids, 4)][:5]
    assert unique4, "the fixture should have unique 4-digit prefixes"
    for oid in unique4:
        for length in (4, 7, 12, 39):
            path = m.path / oid[:2] / oid[2:length]
            assert git.disambiguate(oid[:length]) == [oid]
            assert path.read_bytes() == git.read(oid)[1]
            assert os.stat(path).st_ino == natural_inode(oid)
        assert oid[2:4] not in os.listdir(m.path / oid[:2])


def test_ambiguous_name_is_enotuniq_and_logged(fixtures_root, mount):
    repo = fixtures_root / "ambiguous"
    git = git_for(repo)
    collisions = colliding_prefixes(git.ids(), 5)
    prefix, members = next(iter(sorted(collisions.items())))
    assert git.disambiguate(prefix) == members
    m = mount(repo)
    with pytest.raises(OSError) as e:
        (m.path / prefix[:2] / prefix[2:]).read_bytes()
    assert e.value.errno == errno.ENOTUNIQ
    log = m.log()
    assert all(member in log for member in members), log


@pytest.mark.parametrize("name", ["x", "zz", "1", "0123456789abcdef0123456789abcdef0123456789"])
def test_bad_names_are_enoent(fixtures_root, mount, name):
    m = mount(fixtures_root / "bare")
    bucket = sorted(os.listdir(m.path))[0]
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / bucket / name)
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / name)


def pack_locations(git) -> dict[str, list[tuple[str, int]]]:
    """id -> every (pack file name, offset) holding it, from `git show-index`."""
    where = {}
    for pack in git.packs():
        idx = pack.with_suffix(".idx").read_bytes()
        for line in git.run_bytes("show-index", input=idx).decode().splitlines():
            offset, oid = line.split()[:2]
            where.setdefault(oid, []).append((pack.name, int(offset)))
    return where


def delta_bases(git, pack: Path) -> dict[str, str]:
    """id -> base id for every delta in one pack, from `git verify-pack -v`."""
    bases = {}
    for line in git.run("verify-pack", "-v", str(pack.with_suffix(".idx"))).splitlines():
        fields = line.split()
        if len(fields) == 7 and re.fullmatch(r"[0-9a-f]{40,64}", fields[0]):
            bases[fields[0]] = fields[6]
    return bases


def test_xattrs_match_git(fixtures_root, mount):
    repo = fixtures_root / "bare"
    git = git_for(repo)
    objects = git.objects()
    located = pack_locations(git)
    bases = {pack.name: delta_bases(git, pack) for pack in git.packs()}
    loose = set(git.loose_ids())
    m = mount(repo)
    deltas = 0
    for oid, (kind, _) in objects.items():
        path = m.path / oid[:2] / oid[2:]
        names = os.listxattr(path)
        assert os.getxattr(path, "user.git.type").decode() == kind
        source = os.getxattr(path, "user.git.source").decode()
        if source == "loose":
            assert oid in loose
            assert "user.git.offset" not in names and "user.git.delta_base" not in names
            continue
        offset = int(os.getxattr(path, "user.git.offset"))
        assert (source, offset) in located[oid], (oid, source, offset)
        base = bases[source].get(oid)
        if base is None:
            assert "user.git.delta_base" not in names
        else:
            deltas += 1
            assert os.getxattr(path, "user.git.delta_base").decode() == base
    assert deltas > 0, "the fixture should hold deltas"
    with pytest.raises(OSError) as e:
        os.getxattr(m.path / oid[:2] / oid[2:], "user.git.nonesuch")
    assert e.value.errno == errno.ENODATA


def test_getfattr_dump_shows_the_attributes(fixtures_root, mount):
    repo = fixtures_root / "bare"
    head = git_for(repo).rev_parse("HEAD")
    m = mount(repo)
    out = subprocess.run(["getfattr", "-d", str(m.path / head[:2] / head[2:])],
                         capture_output=True, text=True, check=True).stdout
    assert 'user.git.type="commit"' in out
    assert "user.git.source=" in out


def test_writes_are_erofs(fixtures_root, mount):
    repo = fixtures_root / "bare"
    head = git_for(repo).rev_parse("HEAD")
    m = mount(repo)
    obj = m.path / head[:2] / head[2:]
    attempts = [
        lambda: open(obj, "r+b"),
        lambda: open(obj, "ab"),
        lambda: open(m.path / head[:2] / "new", "wb"),
        lambda: os.unlink(obj),
        lambda: os.mkdir(m.path / "zz"),
        lambda: os.rmdir(m.path / head[:2]),
        lambda: os.rename(obj, m.path / head[:2] / "renamed"),
        lambda: os.chmod(obj, 0o644),
        lambda: os.truncate(obj, 0),
        lambda: os.utime(obj, (0, 0)),
        lambda: os.symlink("x", m.path / head[:2] / "link"),
        lambda: os.link(obj, m.path / head[:2] / "hard"),
        lambda: os.setxattr(obj, "user.git.type", b"blob"),
        lambda: os.removexattr(obj, "user.git.type"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS
    assert obj.read_bytes() == git_for(repo).read(head)[1]


def test_mount_table_shows_fuse_gitfs_with_the_repo(fixtures_root, mount):
    repo = fixtures_root / "bare"
    m = mount(repo)
    source, _, fstype, options = mount_line(m.path)[:4]
    assert fstype == "fuse.gitfs"
    assert source == str(repo)
    assert "ro" in options.split(",")


def test_concurrent_readers(fixtures_root, mount):
    repo = fixtures_root / "midx"
    git = git_for(repo)
    expected = {oid: data for oid, _, data in git.contents(git.ids())}
    m = mount(repo)
    failures = []

    def reader(seed: int):
        order = sorted(expected)
        random.Random(seed).shuffle(order)
        try:
            for oid in order:
                with open(m.path / oid[:2] / oid[2:], "rb") as f:
                    if f.read() != expected[oid]:
                        failures.append(oid)
        except OSError as e:
            failures.append(repr(e))

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_big_blobs_streamed_with_a_small_cache(fixtures_root, mount):
    repo = fixtures_root / "bigblob"
    git = git_for(repo)
    objects = git.objects()
    big = sorted(oid for oid, (kind, size) in objects.items() if size > 1 << 20)
    assert len(big) >= 3
    m = mount(repo, "--cache-size", "1M")
    rnd = random.Random(4)
    for oid in big:
        data = git.read(oid)[1]
        path = m.path / oid[:2] / oid[2:]
        # Random reads first, while the kernel's page cache holds nothing of the
        # file: they reach the mount and make its stream seek back and forth.
        with open(path, "rb", buffering=0) as f:
            for _ in range(20):
                off = rnd.randrange(len(data))
                n = rnd.choice([1, 4096, 200_000])
                assert os.pread(f.fileno(), n, off) == data[off:off + n]
            assert os.pread(f.fileno(), 10, len(data)) == b""
        assert path.read_bytes() == data


def swap_loose_object(git, victim: str, donor: str) -> None:
    """Makes the loose file of victim hold donor's (valid, but wrong) object."""
    objects = git.git_dir / "objects"
    path = objects / victim[:2] / victim[2:]
    path.chmod(0o644)
    path.write_bytes((objects / donor[:2] / donor[2:]).read_bytes())


def test_verify_refuses_an_object_whose_bytes_do_not_hash_to_its_id(repo_copy, mount):
    repo = repo_copy("loose")
    git = repo.git
    blobs = sorted(oid for oid, (kind, _) in git.objects().items() if kind == "blob")
    victim, donor = blobs[0], blobs[1]
    donor_data = git.read(donor)[1]
    swap_loose_object(git, victim, donor)

    plain = mount(repo.path)
    # Without --verify the damage is invisible (git itself would serve these bytes too).
    assert (plain.path / victim[:2] / victim[2:]).read_bytes() == donor_data

    checked = mount(repo.path, "--verify")
    with pytest.raises(OSError) as e:
        (checked.path / victim[:2] / victim[2:]).read_bytes()
    assert e.value.errno == errno.EIO
    assert victim in checked.log()
    assert (checked.path / donor[:2] / donor[2:]).read_bytes() == donor_data


@pytest.mark.parametrize("spin_us, threads, compiled", [
    ("0", "0", "1"), ("20", "0", "1"), ("2000", "0", "1"), ("20", "2", "1"), ("0", "2", "1"), ("20", "0", "0"),
    ("20/500", "0", "1")])
def test_readers_get_gits_bytes_whether_the_loop_waits_awake_or_asleep(fixtures_root, mount, spin_us, threads,
                                                                        compiled):
    """pyfuse3.set_spin (gitfs/pyfuse3-spin.patch): the loop waits for the next request awake, the
    descriptor non-blocking, and falls back to epoll; 0 is the stock loop. Several readers at once
    (requests queue while one is processed, and tasks are started for them), and a gap longer than
    the spin, all answered alike: by the loop alone, with request threads beside it
    (GITFS_REQUEST_THREADS, pyfuse3-fast-path.patch), and with LOOKUP and READ answered in C or
    all in Python (GITFS_COMPILED_REQUESTS)."""
    import time

    repo = fixtures_root / "midx"
    git = git_for(repo)
    expected = {oid: data for oid, _, data in git.contents(sorted(git.objects()))}
    spin_us, _, fast_spin_us = spin_us.partition("/")  # (after a request answered in C: GITFS_FAST_SPIN_US)
    m = mount(repo, env={"GITFS_SPIN_US": spin_us, "GITFS_FAST_SPIN_US": fast_spin_us or spin_us,
                         "GITFS_REQUEST_THREADS": threads, "GITFS_COMPILED_REQUESTS": compiled})
    errors, got = [], []

    def reader(seed):
        try:
            ids = random.Random(seed).sample(sorted(expected), min(60, len(expected)))
            got.append({oid: (m.path / oid[:2] / oid[2:]).read_bytes() for oid in ids})
            time.sleep(0.01)  # longer than any spin: the loop sleeps, and the next request wakes it
            os.listdir(m.path / ids[0][:2])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a reader hung"
    assert not errors, errors
    assert len(got) == 6 and all(part == {oid: expected[oid] for oid in part} for part in got)
    answered = json.loads(os.getxattr(m.path, "user.gitfs.status")).get("compiled requests")
    if compiled == "1" and features.compiled_requests() is None:
        assert answered["state"] == "on" and answered["lookups"] > 0 and answered["reads"] > 0, answered
    else:
        assert answered is None or answered["lookups"] == 0
