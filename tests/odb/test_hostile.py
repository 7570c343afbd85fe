"""Hostile repositories: delta loops, absurd depths and sizes, zlib bombs, alternates that loop.

Each case must end in a clear OdbError (or the object served byte-exact where it is valid), within
a time limit and without memory that grows with what a header claims.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import damage
from limits import memory_limit, time_limit
from engine_check import read_engine  # noqa: F401 - autouse: every test here runs on both read paths
import odb
from size_check import check_sizes
from damage import PackBuilder, hash_object, insert_delta

TB = 1 << 40


def refused(store, oid: str, *, seconds: float = 10, memory: int = 32 << 20, text: str = "") -> odb.OdbError:
    """The object is refused with an OdbError by read, read_header and open_stream, in bounded time
    and memory; returns the read() error. read_sizes answers as read_size does."""
    with time_limit(seconds), memory_limit(memory):
        with pytest.raises(odb.OdbError) as e:
            store.read(oid)
        with pytest.raises(odb.OdbError):
            store.open_stream(oid).read()
        check_sizes(store, [oid])
    assert text in str(e.value)
    return e.value


def size_refused(store, oid: str) -> None:
    """A header that lies about a size is CorruptObject for read_header, read_size and read_sizes alike."""
    for call in (store.read_header, store.read_size):
        with time_limit(10), pytest.raises(odb.CorruptObject):
            call(oid)
    with time_limit(10), memory_limit(1 << 20):
        (answer,) = check_sizes(store, [oid])
    assert answer[0] is odb.CorruptObject


@pytest.fixture
def empty(repo_copy):
    """A private, empty repository to fill with crafted packs and loose objects."""
    return repo_copy("empty")


def pack_dir(repo) -> Path:
    return repo.objects_dir / "pack"


def fake_id(n: int) -> bytes:
    """An id no real object has, distinct per n."""
    return hashlib_id(b"fake %d" % n)


def hashlib_id(seed: bytes) -> bytes:
    return damage.checksum(seed, 20)


# ---- delta loops ----------------------------------------------------------------------------------


def test_ref_delta_to_itself(empty):
    me = fake_id(1)
    p = PackBuilder()
    p.ref_delta(me, insert_delta(5, b"hello"), me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), text="loop")
        with time_limit(10), pytest.raises(odb.OdbError):
            store.read_header(me.hex())


def test_ref_delta_loop_of_two_across_packs(empty):
    a, b = fake_id(1), fake_id(2)
    for me, base in ((a, b), (b, a)):
        p = PackBuilder()
        p.ref_delta(base, insert_delta(5, b"hello"), me)
        p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        for oid in (a, b):
            refused(store, oid.hex(), text="loop")
            with time_limit(10), pytest.raises(odb.OdbError):
                store.read_header(oid.hex())
            with time_limit(10), pytest.raises(odb.OdbError):
                store.locate(oid.hex())


def test_ofs_and_ref_delta_loop(empty):
    """An OFS_DELTA cannot point forward, but it can point back at a REF_DELTA that names it."""
    a, b = fake_id(1), fake_id(2)
    p = PackBuilder()
    first = p.ref_delta(b, insert_delta(5, b"hello"), a)
    p.ofs_delta(first, insert_delta(5, b"world"), b)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        for oid in (a, b):
            refused(store, oid.hex(), text="loop")
            with time_limit(10), pytest.raises(odb.OdbError):
                store.read_header(oid.hex())


@pytest.mark.parametrize("distance", [0, "past-start", "huge"])
def test_ofs_delta_base_not_before_it(empty, distance):
    """An OFS_DELTA base at its own offset, before the pack start, or absurdly far."""
    me = fake_id(1)
    p = PackBuilder()
    p.whole("blob", b"hello")
    at = p.next_offset
    base = {0: at, "past-start": 5, "huge": at - (1 << 62)}[distance]
    p.ofs_delta(base, insert_delta(5, b"hello"), me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex())
        with time_limit(10), pytest.raises(odb.OdbError):
            store.read_header(me.hex())


def test_ofs_delta_distance_with_endless_continuation(empty):
    me = fake_id(1)
    p = PackBuilder()
    p.whole("blob", b"hello")
    p.raw(damage.entry_header(damage.OFS_DELTA, 7) + b"\xff" * 4096 + b"\x01" + zlib.compress(b"x" * 7), me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex())


# ---- deep chains ----------------------------------------------------------------------------------


def chain_pack(depth: int) -> tuple[PackBuilder, list[bytes], list[bytes]]:
    """A valid OFS_DELTA chain `depth` deltas deep: (builder, ids, contents), base first."""
    pad = b"shared padding line\n" * 8
    contents = [b"version 0\n" + pad]
    p = PackBuilder()
    offset, oid = p.whole("blob", contents[0])
    ids = [oid]
    for k in range(1, depth + 1):
        data = b"version %d\n" % k + pad
        prev = contents[-1]
        # Copy the shared padding from the previous version, insert the new first line.
        head = b"version %d\n" % k
        delta = damage.varint(len(prev)) + damage.varint(len(data)) + bytes([len(head)]) + head
        delta += _copy(len(prev) - len(pad), len(pad))
        oid = hash_object("blob", data)
        offset = p.ofs_delta(offset, delta, oid)
        contents.append(data)
        ids.append(oid)
    return p, ids, contents


def _copy(off: int, size: int) -> bytes:
    return damage.copy_delta(0, 0, [(off, size)])[2:]


def test_chain_10000_deep_is_refused_quickly(empty):
    p, ids, _ = chain_pack(10_000)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        t = time.monotonic()
        err = refused(store, ids[-1].hex(), seconds=20, text="deeper than")
        assert isinstance(err, odb.CorruptObject)
        with time_limit(20), pytest.raises(odb.CorruptObject, match="deeper than"):
            store.read_header(ids[-1].hex())
        elapsed = time.monotonic() - t
        assert elapsed < 10, elapsed
        # The shallow end of the same chain is fine, and byte-exact with git.
        assert store.read(ids[100].hex()) == ("blob", b"version 100\n" + b"shared padding line\n" * 8)


def test_chain_just_under_the_limit_matches_git(empty):
    """4000 deep is legal (git's pack.depth allows 4095): served byte-exact, as git serves it."""
    from odb.objects.delta_chain import MAX_DEPTH

    depth = min(4000, MAX_DEPTH - 1)
    p, ids, contents = chain_pack(depth)
    pack, idx = p.write(pack_dir(empty))
    verify = empty.git.run("verify-pack", "-s", str(idx))
    assert f"chain length = {depth}: 1 object" in verify
    with odb.open(empty.path) as store, time_limit(60):
        for k in (depth, depth // 2, 1, 0):
            assert store.read(ids[k].hex()) == ("blob", contents[k])
            assert store.read_header(ids[k].hex()) == ("blob", len(contents[k]))
    assert empty.git.read(ids[depth].hex()) == ("blob", contents[depth])


# ---- sizes that lie -------------------------------------------------------------------------------


def test_whole_entry_claiming_a_terabyte(empty):
    me = fake_id(1)
    p = PackBuilder()
    p.whole("blob", b"tiny", oid=me, claimed_size=TB)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), memory=8 << 20)
        size_refused(store, me.hex())


def test_delta_claiming_a_terabyte_result(empty):
    me = fake_id(1)
    p = PackBuilder()
    base_off, _ = p.whole("blob", b"hello")
    p.ofs_delta(base_off, damage.varint(5) + damage.varint(TB) + b"\x05hello", me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), memory=8 << 20)
        size_refused(store, me.hex())


def test_delta_claiming_a_terabyte_base(empty):
    me = fake_id(1)
    p = PackBuilder()
    base_off, _ = p.whole("blob", b"hello")
    p.ofs_delta(base_off, damage.varint(TB) + damage.varint(5) + b"\x05hello", me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), memory=8 << 20, text="base")


def test_delta_entry_header_claiming_a_terabyte(empty):
    me = fake_id(1)
    p = PackBuilder()
    base_off, _ = p.whole("blob", b"hello")
    p.ofs_delta(base_off, insert_delta(5, b"world"), me, claimed_size=TB)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), memory=8 << 20)


def test_entry_header_with_endless_size_bytes(empty):
    me = fake_id(1)
    p = PackBuilder()
    p.raw(b"\xb0" + b"\xff" * 4096 + b"\x01" + zlib.compress(b"x"), me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex())
        size_refused(store, me.hex())


def test_loose_object_claiming_a_terabyte(empty):
    oid = hash_object("blob", b"tiny").hex()
    damage.write_loose(empty.objects_dir, oid, b"blob %d\0tiny" % TB)
    with odb.open(empty.path) as store:
        refused(store, oid, memory=8 << 20)
        size_refused(store, oid)


@pytest.mark.parametrize("kind", [0, 5])
def test_invalid_entry_type(empty, kind):
    me = fake_id(1)
    p = PackBuilder()
    p.raw(damage.entry_header(kind, 5) + zlib.compress(b"hello"), me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), text="type")


@pytest.mark.parametrize("where", ["past-end", "in-trailer", "mid-entry", "in-header"])
def test_idx_offset_pointing_at_garbage(empty, where):
    me = fake_id(1)
    p = PackBuilder()
    at, real = p.whole("blob", b"some content that is long enough " * 4)
    size = len(p.pack_bytes())
    offset = {"past-end": size + 100, "in-trailer": size - 10, "mid-entry": at + 7, "in-header": 4}[where]
    p.index.append((me, offset, 0))
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        with time_limit(10), pytest.raises(odb.OdbError):
            store.read(me.hex())
        assert store.read(real.hex())[1] == b"some content that is long enough " * 4


# ---- zlib bombs -----------------------------------------------------------------------------------


def zeros_deflated(n: int) -> bytes:
    """zlib of n zero bytes, made without holding n bytes (about n/1000 bytes of output)."""
    c = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [c.compress(chunk) for _ in range(n >> 20)]
    parts.append(c.flush())
    return b"".join(parts)


BOMB = zeros_deflated(256 << 20)  # 256 MiB of zeros in about 250 KiB


def test_pack_entry_bomb_header_says_small(empty):
    me = fake_id(1)
    p = PackBuilder()
    p.whole("blob", b"", oid=me, claimed_size=100, compressed=BOMB)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), seconds=10, memory=16 << 20)
        assert store.read_header(me.hex()) == ("blob", 100)  # the header alone is not a lie we can see


def test_pack_delta_bomb(empty):
    me = fake_id(1)
    p = PackBuilder()
    base_off, _ = p.whole("blob", b"hello")
    delta_head = damage.varint(5) + damage.varint(5)
    entry = damage.entry_header(damage.OFS_DELTA, 20) + damage.ofs_distance(p.next_offset - base_off)
    c = zlib.compressobj(9)
    body = c.compress(delta_head + b"\x05hello") + c.compress(bytes(64 << 20)) + c.flush()
    p.raw(entry + body, me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), seconds=10, memory=16 << 20)


def test_loose_bomb(empty):
    oid = hash_object("blob", b"x" * 10).hex()
    path = damage.loose_path(empty.objects_dir, oid)
    path.parent.mkdir(parents=True)
    c = zlib.compressobj(9)
    data = c.compress(b"blob 10\0") + c.compress(b"x" * 10)
    data += b"".join(c.compress(bytes(1 << 20)) for _ in range(256)) + c.flush()
    path.write_bytes(data)
    with odb.open(empty.path) as store:
        refused(store, oid, seconds=10, memory=16 << 20)


def test_big_zero_blob_streams_in_bounded_memory(empty):
    """Not hostile: a real 256 MiB blob of zeros. open_stream must not hold it whole."""
    data_len = 256 << 20
    oid = fake_id(7)  # the id is not checked without verify; what matters is the memory
    p = PackBuilder()
    p.whole("blob", b"", oid=oid, claimed_size=data_len, compressed=BOMB)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store, time_limit(30), memory_limit(24 << 20):
        s = store.open_stream(oid.hex())
        total = 0
        while chunk := s.read(1 << 20):
            assert not chunk.strip(b"\0")
            total += len(chunk)
        s.close()
    assert total == data_len


# ---- alternates -----------------------------------------------------------------------------------


def _alternates(objects_dir: Path, *lines: str) -> None:
    info = objects_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "alternates").write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def two_repos(repo_copy, tmp_path):
    """Two private repositories with one loose object each."""
    a = repo_copy("loose")
    b = tmp_path / "other.git"
    subprocess.run(["git", "init", "-q", "--bare", str(b)], check=True,
                   env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"})
    blob = b"only in the other repository\n"
    oid = hash_object("blob", blob).hex()
    damage.write_loose(b / "objects", oid, b"blob %d\0" % len(blob) + blob)
    return a, b / "objects", oid, blob


def test_alternates_that_loop(two_repos, caplog):
    a, b_objects, oid, blob = two_repos
    _alternates(a.objects_dir, str(b_objects))
    _alternates(b_objects, str(a.objects_dir))
    with time_limit(10), odb.open(a.path) as store:
        assert store.read(oid) == ("blob", blob)
        assert sorted(store) == a.git.ids()  # git lists the alternate's objects too
        assert oid in a.git.ids()
    assert any("loops" in r.getMessage() for r in caplog.records)


def test_alternate_pointing_at_itself(repo_copy, caplog):
    a = repo_copy("loose")
    _alternates(a.objects_dir, ".", str(a.objects_dir), "../objects")
    with time_limit(10), odb.open(a.path) as store:
        assert sorted(store) == a.git.ids()
        for oid in a.git.ids()[:5]:
            assert store.read(oid) == a.git.read(oid)


def test_alternates_nested_too_deep(repo_copy, tmp_path, caplog):
    a = repo_copy("loose")
    chain = [tmp_path / f"deep{k}" / "objects" for k in range(12)]
    for d in chain:
        (d / "pack").mkdir(parents=True)
    _alternates(a.objects_dir, str(chain[0]))
    for k in range(11):
        _alternates(chain[k], str(chain[k + 1]))
    blob = b"at the bottom\n"
    oid = hash_object("blob", blob).hex()
    damage.write_loose(chain[-1], oid, b"blob %d\0" % len(blob) + blob)
    with time_limit(10), odb.open(a.path) as store:
        with pytest.raises(odb.ObjectNotFound):
            store.read(oid)
        assert sorted(store) == a.git.ids()
    assert any("deep" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("line", [
    "/nonexistent/objects",
    "relative/nowhere",
    "/dev/null",
    "/etc/passwd",
    "\x00\x01\x02 binary \xff garbage",
    '"unterminated quote',
    "/",
    "x" * 5000,
])
def test_alternates_pointing_at_nonsense(repo_copy, line):
    a = repo_copy("loose")
    _alternates(a.objects_dir, line)
    with time_limit(10), odb.open(a.path) as store:
        assert sorted(store) == a.git.ids()
        oid = a.git.ids()[0]
        assert store.read(oid) == a.git.read(oid)
        with pytest.raises(odb.ObjectNotFound):
            store.read("0" * 40)


def test_alternates_file_that_is_binary_junk(repo_copy):
    a = repo_copy("loose")
    info = a.objects_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "alternates").write_bytes(os.urandom(1 << 16))
    with time_limit(10), odb.open(a.path) as store:
        assert sorted(store) == a.git.ids()


# ---- the multi-pack-index names packs elsewhere ---------------------------------------------------


@pytest.mark.parametrize("name", ["../../../victim/objects/pack/{}", "/{}", "..\\{}", "sub/{}", "..{}"])
def test_midx_pack_name_escaping_the_directory(repo_copy, tmp_path, name, caplog):
    """A PNAM entry that walks out of objects/pack is refused: the midx is ignored, nothing outside is read."""
    repo = repo_copy("midx")
    ids = repo.git.ids()  # before the damage: git reads a midx with PNAM order wrong as garbage
    path = damage.midx_path(repo.objects_dir)
    m = damage.Midx.read(path)
    names = m.pack_names()
    names[0] = name.format(names[0].decode()).encode()
    m.set_chunk(b"PNAM", damage.encode_pnam(sorted(names)))
    m.write(path)
    with odb.open(repo.path) as store:
        assert not damage.midx_loaded(store)
        assert sorted(store) == ids
        for oid in ids[::7]:
            assert store.read(oid)
    assert any("multi-pack-index" in r.getMessage() for r in caplog.records)


# ---- thousands of packs ---------------------------------------------------------------------------


def test_thousands_of_packs_keep_file_descriptors_bounded(empty):
    """2000 packs, every object read, under a descriptor limit of 64 (in a child process)."""
    blobs = []
    for k in range(2000):
        data = b"object in pack %d\n" % k
        p = PackBuilder()
        p.whole("blob", data)
        p.write(pack_dir(empty))
        blobs.append((hash_object("blob", data).hex(), data))
    script = f"""
import resource, sys, os
sys.path.insert(0, {str(Path(odb.__file__).parent.parent)!r})
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
import odb
store = odb.open({str(empty.path)!r})
ids = sorted(store)
assert len(ids) == 2000, len(ids)
for i in ids:
    store.read(i)
for i in reversed(ids):
    store.read_header(i)
print(len(os.listdir("/proc/self/fd")))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) < 16
    with odb.open(empty.path) as store:
        for oid, data in blobs[::97]:
            assert store.read(oid) == ("blob", data)


# ---- files that are not regular files -------------------------------------------------------------


def _fifo(path: Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("what", ["midx", "idx", "pack", "alternates", "loose"])
def test_fifo_in_place_of_a_file_does_not_hang(repo_copy, what):
    """A FIFO blocks an open() for reading until a writer comes: a hostile repository could
    hang odb.open or a read forever. (git itself hangs on some of these.)"""
    repo = repo_copy("midx")
    ids = repo.git.ids()
    named, outside = damage.midx_packs(repo.objects_dir)
    gone: set[str] = set()
    if what == "midx":
        _fifo(damage.midx_path(repo.objects_dir))
    elif what == "idx":
        gone = damage.ids_in(outside[0])
        _fifo(outside[0].with_suffix(".idx"))
    elif what == "pack":
        gone = damage.ids_in(named[0])
        _fifo(named[0])
    elif what == "alternates":
        _fifo(repo.objects_dir / "info" / "alternates")
    else:
        gone = {repo.git.loose_ids()[0]}
        _fifo(damage.loose_path(repo.objects_dir, next(iter(gone))))
    with time_limit(10), odb.open(repo.path) as store:
        assert sorted(store) == sorted(set(ids) - gone)
        for oid in ids:
            if oid in gone:
                with pytest.raises(odb.ObjectNotFound):
                    store.read(oid)
            else:
                store.read(oid)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_pack_and_index_symlinked_to_devices(repo_copy, device):
    repo = repo_copy("midx")
    ids = repo.git.ids()
    named, outside = damage.midx_packs(repo.objects_dir)
    gone = damage.ids_in(outside[0]) | damage.ids_in(named[0])
    outside[0].with_suffix(".idx").unlink()
    outside[0].with_suffix(".idx").symlink_to(device)
    named[0].unlink()
    named[0].symlink_to(device)
    with time_limit(10), memory_limit(16 << 20), odb.open(repo.path) as store:
        assert sorted(store) == sorted(set(ids) - gone)
        for oid in sorted(gone)[:10]:
            with pytest.raises(odb.ObjectNotFound):
                store.read(oid)


def test_delta_bomb_that_really_expands(empty):
    """A valid delta whose 65536 two-byte copies of a 16 MiB base make 1 TiB: a few hundred
    bytes on disk. Refused (git never deltifies above 512 MiB), without building any of it."""
    base_size = 16 << 20
    p = PackBuilder()
    base_off, _ = p.whole("blob", b"", oid=hash_object("blob", bytes(base_size)), claimed_size=base_size,
                          compressed=zeros_deflated(base_size))
    n = 65536
    me = fake_id(1)
    p.ofs_delta(base_off, damage.varint(base_size) + damage.varint(n * 0xFF0000) + b"\xc0\xff" * n, me)
    p.write(pack_dir(empty))
    with odb.open(empty.path) as store:
        refused(store, me.hex(), memory=64 << 20, text="limit")
        # The size is refused too: a reader trusting st_size would try to allocate 1 TiB.
        with time_limit(10), memory_limit(1 << 20), pytest.raises(odb.CorruptObject, match="limit"):
            store.read_header(me.hex())
