"""The damage matrix through the mount: it stays up, serves every intact object byte-exact, gives
EIO for a broken one and names it in the log, and never serves wrong bytes."""

from __future__ import annotations

import errno
import os
import time
import zlib
from pathlib import Path

import pytest

import damage
from midx_fixtures import bases, repo, truth  # noqa: F401 - pytest fixtures
from damage import PackBuilder, hash_object, insert_delta
from mounting import mounted


def mount_pids(mnt: Path) -> list[int]:
    """The processes serving the mount at mnt: the daemon and any helper it forked (their
    command lines name the mountpoint)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(mnt).encode() in argv and b"gitfs" in b" ".join(argv):
                pids.append(int(entry))
    if not pids:
        raise LookupError(f"no process serves {mnt}")
    return pids


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmHWM")


def listing(mnt: Path) -> set[str]:
    return {b + n for b in os.listdir(mnt) for n in os.listdir(mnt / b)}


def walk(m, truth, *, broken=frozenset(), gone=frozenset(), extra=frozenset()) -> None:
    """Reads the whole mount: intact objects byte-exact with git, broken ones EIO (and named in
    the log), gone ones neither listed nor readable; the mount is still up afterwards."""
    mnt = m.path
    assert listing(mnt) == (set(truth) - set(gone)) | set(extra)
    for oid, (kind, data) in sorted(truth.items()):
        path = mnt / oid[:2] / oid[2:]
        if oid in gone:
            with pytest.raises(FileNotFoundError):
                path.read_bytes()
        elif oid in broken:
            with pytest.raises(OSError) as e:
                path.read_bytes()
            assert e.value.errno == errno.EIO, (oid, e.value)
        else:
            assert path.read_bytes() == data, oid
            assert path.stat().st_size == len(data), oid
    log = m.log()
    for oid in broken:
        assert oid in log, f"the log does not name the broken object {oid}"
    assert mounted(mnt)
    assert len(os.listdir(mnt)) > 0


# ---- a bad multi-pack-index -----------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(damage.BAD_MIDX))
def test_bad_midx(repo, truth, mount, case):
    damage.damage_midx(repo.objects_dir, case)
    walk(mount(repo.path), truth)


def test_truncated_midx(repo, truth, mount):
    path = damage.midx_path(repo.objects_dir)
    damage.truncate(path, path.stat().st_size // 2)
    walk(mount(repo.path), truth)


def test_midx_damaged_while_mounted(repo, truth, mount):
    m = mount(repo.path)
    walk(m, truth)
    damage.damage_midx(repo.objects_dir, "decreasing-fanout")
    walk(m, truth)  # the re-read of the root refreshes and falls back to the .idx files


def test_broken_midx_entry(repo, truth, mount):
    path = damage.midx_path(repo.objects_dir)
    midx = damage.Midx.read(path)
    entries = midx.ooff()
    entries[len(entries) // 2] = (99, entries[len(entries) // 2][1])
    midx.set_chunk(b"OOFF", damage.encode_ooff(entries))
    midx.write(path)
    walk(mount(repo.path), truth)


# ---- broken packs and indexes ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["outside-midx", "under-midx"])
def test_truncated_idx(repo, truth, mount, where):
    named, outside = damage.midx_packs(repo.objects_dir)
    pack = outside[0] if where == "outside-midx" else named[0]
    gone = damage.ids_in(pack)
    damage.truncate(pack.with_suffix(".idx"), 1500)
    m = mount(repo.path)
    walk(m, truth, gone=gone)
    assert pack.name in m.log()


@pytest.mark.parametrize("what", ["count", "trailer"])
@pytest.mark.parametrize("where", ["outside-midx", "under-midx"])
def test_pack_disagreeing_with_its_idx(repo, truth, mount, where, what):
    named, outside = damage.midx_packs(repo.objects_dir)
    pack = outside[0] if where == "outside-midx" else named[0]
    gone = damage.ids_in(pack)
    damage.flip(pack, {"count": 11, "trailer": -1}[what], 0x02)
    m = mount(repo.path)
    walk(m, truth, gone=gone)
    assert pack.name in m.log()


def test_pack_deleted_under_a_loaded_midx(repo, truth, mount):
    named, _ = damage.midx_packs(repo.objects_dir)
    victim = named[1]
    m = mount(repo.path)
    walk(m, truth)
    gone = damage.ids_in(victim)
    victim.unlink()
    victim.with_suffix(".idx").unlink()
    walk(m, truth, gone=gone)
    oid = sorted(gone)[0]
    with pytest.raises(FileNotFoundError):
        (m.path / oid[:2] / oid[2:12]).read_bytes()  # nor by an abbreviation
    kept = sorted(set(truth) - gone)[0]
    assert (m.path / kept[:2] / kept[2:12]).read_bytes() == truth[kept][1]


# ---- flipped bytes in objects ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["outside-midx", "under-midx"])
def test_flipped_bytes_in_packed_objects(repo, truth, bases, mount, where):
    named, outside = damage.midx_packs(repo.objects_dir)
    pack = outside[0] if where == "outside-midx" else named[-1]
    based_on = set(bases.values())
    base_oid, start, end = damage.entry_of(pack, lambda o: o in based_on and o not in bases)
    damage.flip(pack, (start + end) // 2, 0x10)
    plain_oid, start, end = damage.entry_of(pack, lambda o: o not in bases and o not in based_on)
    damage.flip(pack, (start + end) // 2, 0x01)
    broken = damage.dependents(bases, {base_oid, plain_oid})
    assert len(broken) > 2
    walk(mount(repo.path), truth, broken=broken)


def test_flipped_byte_in_a_loose_object(repo, truth, mount):
    oid = max(repo.git.loose_ids(), key=lambda o: len(truth[o][1]))
    path = damage.loose_path(repo.objects_dir, oid)
    damage.flip(path, path.stat().st_size // 2, 0x08)
    walk(mount(repo.path), truth, broken={oid})


def test_loose_object_longer_than_its_header(repo, truth, mount):
    oid = hash_object("blob", b"hello").hex()
    damage.write_loose(repo.objects_dir, oid, b"blob 5\0hello world")
    m = mount(repo.path)
    walk(m, truth, extra={oid})
    with pytest.raises(OSError) as e:
        (m.path / oid[:2] / oid[2:]).read_bytes()
    assert e.value.errno == errno.EIO
    assert oid in m.log()


# ---- hostile packs through the mount --------------------------------------------------------------


def _hostile_repo(repo_copy) -> tuple[object, dict[str, str]]:
    """The empty fixture with one pack of hostile entries beside one good blob: name -> hex id."""
    repo = repo_copy("empty")
    ids = {}
    p = PackBuilder()
    _, good = p.whole("blob", b"a good object among hostile ones\n")
    ids["good"] = good.hex()
    me = damage.checksum(b"self", 20)
    p.ref_delta(me, insert_delta(5, b"hello"), me)
    ids["self-delta"] = me.hex()
    big = damage.checksum(b"terabyte", 20)
    p.whole("blob", b"tiny", oid=big, claimed_size=1 << 40)
    ids["terabyte"] = big.hex()
    bomb = damage.checksum(b"bomb", 20)
    c = zlib.compressobj(9)
    p.whole("blob", b"", oid=bomb, claimed_size=100,
            compressed=b"".join(c.compress(bytes(1 << 20)) for _ in range(64)) + c.flush())
    ids["bomb"] = bomb.hex()
    # A valid delta of 65536 two-byte copies of a 16 MiB base: 1 TiB from a few hundred bytes.
    base_size = 16 << 20
    c = zlib.compressobj(9)
    base_off, _ = p.whole("blob", b"", oid=hash_object("blob", bytes(base_size)), claimed_size=base_size,
                          compressed=b"".join(c.compress(bytes(1 << 20)) for _ in range(16)) + c.flush())
    expanding = damage.checksum(b"expanding delta", 20)
    p.ofs_delta(base_off, damage.varint(base_size) + damage.varint(65536 * 0xFF0000) + b"\xc0\xff" * 65536,
                expanding)
    ids["delta-bomb"] = expanding.hex()
    p.write(repo.objects_dir / "pack")
    deep = PackBuilder()
    pad = b"padding\n" * 4
    offset, _ = deep.whole("blob", b"v0\n" + pad)
    prev = b"v0\n" + pad
    for k in range(1, 10_001):
        data = b"v%d\n" % k + pad
        head = b"v%d\n" % k
        delta = (damage.varint(len(prev)) + damage.varint(len(data)) + bytes([len(head)]) + head
                 + damage.copy_delta(0, 0, [(len(prev) - len(pad), len(pad))])[2:])
        offset = deep.ofs_delta(offset, delta, hash_object("blob", data))
        prev = data
    deep.write(repo.objects_dir / "pack")
    ids["deep"] = hash_object("blob", prev).hex()
    return repo, ids


def test_hostile_objects_give_eio_quickly_and_the_rest_reads(repo_copy, mount):
    repo, ids = _hostile_repo(repo_copy)
    m = mount(repo.path)
    names = listing(m.path)
    assert set(ids.values()) <= names
    for name, oid in ids.items():
        path = m.path / oid[:2] / oid[2:]
        t = time.monotonic()
        if name == "good":
            assert path.read_bytes() == b"a good object among hostile ones\n"
            continue
        with pytest.raises(OSError) as e:
            path.read_bytes()
        assert e.value.errno == errno.EIO, name
        assert time.monotonic() - t < 15, name
        assert oid in m.log(), name
    assert mounted(m.path)
    assert (m.path / ids["good"][:2] / ids["good"][2:]).read_bytes() == b"a good object among hostile ones\n"
    # The bombs and the terabyte claims must not have been inflated or allocated.
    for pid in mount_pids(m.path):
        assert peak_rss(pid) < 200 << 20, pid


# ---- --verify -------------------------------------------------------------------------------------


def _swapped_ids_repo(repo_copy):
    """An index that names two intact blobs by each other's id: only hashing can tell."""
    repo = repo_copy("empty")
    p = PackBuilder()
    a_data, b_data = b"the first blob\n", b"the second blob!\n"
    a_off, a = p.whole("blob", a_data)
    b_off, b = p.whole("blob", b_data)
    p.index = [(a, b_off, 0), (b, a_off, 0)]
    p.write(repo.objects_dir / "pack")
    return repo, a.hex(), b.hex(), a_data, b_data


def test_verify_answers_eio_on_a_hash_mismatch(repo_copy, mount):
    repo, a, b, a_data, b_data = _swapped_ids_repo(repo_copy)
    plain = mount(repo.path)
    # Without --verify the index is trusted, as git trusts it: this is what --verify is for.
    assert (plain.path / a[:2] / a[2:]).read_bytes() == b_data
    checked = mount(repo.path, "--verify")
    for oid in (a, b):
        with pytest.raises(OSError) as e:
            (checked.path / oid[:2] / oid[2:]).read_bytes()
        assert e.value.errno == errno.EIO
        assert oid in checked.log()


def test_verify_serves_intact_objects(repo, truth, mount):
    walk(mount(repo.path, "--verify"), truth)


# ---- alternates that loop or point at nonsense ----------------------------------------------------


def test_alternates_that_loop_and_point_at_nonsense(repo_copy, mount):
    repo = repo_copy("alt-relative")  # comes with its own copy of alt-base
    base_objects = repo.path.parent / "alt-base" / ".git" / "objects"
    ids = repo.git.ids()
    with open(base_objects / "info" / "alternates", "a") as f:
        f.write(f"{repo.objects_dir}\n")  # alt-base -> alt-relative -> alt-base ...
    with open(repo.objects_dir / "info" / "alternates", "a") as f:
        f.write("/nonexistent/objects\n/etc/passwd\n../../../../../../..\n")
    m = mount(repo.path)
    assert listing(m.path) == set(ids)
    for oid, kind, data in repo.git.contents(ids):
        assert (m.path / oid[:2] / oid[2:]).read_bytes() == data


# ---- thousands of packs ---------------------------------------------------------------------------


def test_thousands_of_packs_keep_the_mount_descriptors_bounded(repo_copy, mount):
    repo = repo_copy("empty")
    blobs = {}
    for k in range(1000):
        data = b"object in pack %d\n" % k
        p = PackBuilder()
        _, oid = p.whole("blob", data)
        p.write(repo.objects_dir / "pack")
        blobs[oid.hex()] = data
    m = mount(repo.path)
    assert listing(m.path) == set(blobs)
    for oid, data in blobs.items():
        assert (m.path / oid[:2] / oid[2:]).read_bytes() == data
    for pid in mount_pids(m.path):
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert fds < 100, f"process {pid} of the mount holds {fds} descriptors for 1000 packs"
