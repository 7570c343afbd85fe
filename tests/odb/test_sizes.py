"""Store.read_sizes and odb/pack/sizes.py, in both implementations: git's sizes on every fixture,
read_size's answers whatever the ids, and the C loops step for step against the Python ones."""

from __future__ import annotations

import random
import struct
import zlib
from array import array

import pytest

import damage
import odb
from odb.pack import sizes
from odb.objects import delta_chain
from odb.pack.fanout import SUBFANOUT_MIN, SortedIds
from odb.pack.packfile import Pack
from format_fixtures import FORMAT_NAMES, Answers, repo_path
from size_check import BATCH, IMPLEMENTATIONS, available, batched, check_sizes, using



@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request):
    with using(request.param):
        yield request.param


@pytest.fixture
def store(any_repo):
    s = odb.open(any_repo.path)
    yield s
    s.close()


def raw_ids(oids) -> list[bytes]:
    return [bytes.fromhex(o) for o in oids]


# ---- against git ----------------------------------------------------------------------------------


def test_every_object_has_gits_size(any_repo, store, implementation):
    objects = any_repo.git.objects()
    ids = sorted(objects)  # bucket order, as listings ask
    got = batched(store, raw_ids(ids))
    assert got == [objects[oid][1] for oid in ids]


def test_one_call_for_every_object(any_repo, store, implementation):
    objects = any_repo.git.objects()
    sizes_, errors = store.read_sizes(b"".join(raw_ids(objects)))
    assert errors == {}
    assert list(sizes_) == [size for _, size in objects.values()]


def test_read_sizes_is_read_size_on_every_fixture(any_repo, store):
    """Real ids, absent ids and a malformed tail, shuffled and repeated: read_size's answer each."""
    ids = any_repo.git.ids()
    hex_len = store.format.hex_len
    absent = [c * hex_len for c in "0137f" if c * hex_len not in ids]
    mixed = ids + absent + ids[:3]
    random.Random(7).shuffle(mixed)
    answers = check_sizes(store, mixed)
    assert sum(isinstance(a, tuple) for a in answers) == len(absent)
    check_sizes(store, ids, batch=7)


def test_a_short_id_at_the_end_is_not_found(fixture_repo, implementation):
    oid = fixture_repo("midx").git.ids()[0]
    with odb.open(fixture_repo("midx").path) as s:
        got, errors = s.read_sizes(bytes.fromhex(oid) + b"\x01\x02\x03")
        assert got[0] == s.read_size(oid) and got[1] == -1
        assert isinstance(errors[1], odb.ObjectNotFound)


def test_nothing_asked_nothing_read(fixture_repo, implementation):
    with odb.open(fixture_repo("midx").path) as s:
        got, errors = s.read_sizes(b"")
        assert (got.typecode, len(got), errors) == ("q", 0, {})


# ---- the bulk path does the work ------------------------------------------------------------------


def asked_of_read_size(path, objects: dict, monkeypatch) -> tuple[list[str], set[str]]:
    """(the ids read_sizes passed on to read_size, the loose ones) over every object."""
    with odb.open(path) as s:
        loose = {oid for oid in objects if s.locate(oid).source.endswith("loose")}
        asked = []
        real = s.read_size
        monkeypatch.setattr(s, "read_size", lambda oid: asked.append(bytes(oid).hex()) or real(oid))
        ids = sorted(objects)
        assert batched(s, raw_ids(ids)) == [objects[oid][1] for oid in ids]
    return asked, loose


@pytest.mark.parametrize("name", ["midx", "idx-v1", "idx-v2", "idx-v2-large", "ref-delta", "sha256", "alt-chain"])
def test_only_loose_objects_go_through_read_size(fixture_repo, implementation, name, monkeypatch):
    """Packed objects, whether under a multi-pack-index, in a pack outside it or in an alternate,
    are answered in bulk; loose ones (and only those) take the careful path."""
    repo = fixture_repo(name)
    objects = repo.git.objects()
    asked, loose = asked_of_read_size(repo.path, objects, monkeypatch)
    assert sorted(asked) == sorted(loose)
    assert len(loose) < len(objects)


@pytest.mark.parametrize("name", ["midx", "idx-v1", "idx-v2", "sha256", "midx-chain", "midx-chain-compacted",
                                  "midx-chain-sha256", "midx-v2", "cruft"])
def test_ids_are_looked_up_in_bulk(fixture_repo, implementation, name, monkeypatch):
    """Only the ids that the first id source (a multi-pack-index, a chain of them, or a lone
    pack) lacks are looked up one at a time, and none at all when it is the only source; packs
    without a multi-pack-index keep git's most-recently-used order, one id at a time. The chains
    and midx v2 come from the newest git, its answers stored beside them."""
    if name in FORMAT_NAMES:
        path, ids = repo_path(name), sorted(Answers.load(name).objects)
    else:
        path, ids = fixture_repo(name).path, fixture_repo(name).git.ids()
    with odb.open(path) as s:
        sources = s._dirs[0].packs.sources
        lacking = [oid for oid in ids if sources[0].find(bytes.fromhex(oid)) is None]
        one_by_one = []
        real = sizes.find_each
        monkeypatch.setattr(sizes, "find_each", lambda located, find, block, n, picks:
                            one_by_one.extend(picks) or real(located, find, block, n, picks))
        batched(s, raw_ids(ids))
    if len(sources) == 1:
        assert one_by_one == []
    elif sources[0].movable:
        assert len(one_by_one) == len(ids)
    else:
        assert len(one_by_one) == len(lacking) < len(ids)


def test_a_pack_written_after_opening_is_found(repo_copy, implementation):
    """A miss refreshes once and retries, as read_size does."""
    repo = repo_copy("idx-v2")
    with odb.open(repo.path) as s:
        blob = b"written after the store was opened\n"
        oid = repo.git.run("hash-object", "-w", "--stdin", input=blob.decode()).strip()
        repo.git.run("repack", "-q", "-d")
        got, errors = s.read_sizes(bytes.fromhex(oid))
        assert (list(got), errors) == ([len(blob)], {})


def test_a_damaged_copy_does_not_hide_a_good_one(repo_copy, implementation, caplog):
    """The copy found first is broken (its entry type is 0): the good loose copy is what
    read_size serves, and so does read_sizes."""
    repo = repo_copy("midx")
    named, _ = damage.midx_packs(repo.objects_dir)
    truth = {oid: (kind, data) for oid, kind, data in repo.git.contents(repo.git.ids())}
    oid, start, _ = damage.entry_of(named[0], lambda o: True)
    data = bytearray(named[0].read_bytes())
    data[start] &= 0x8F
    damage.replace(named[0], bytes(data))
    kind, content = truth[oid]
    damage.write_loose(repo.objects_dir, oid, b"%s %d\0" % (kind.encode(), len(content)) + content)
    with odb.open(repo.path) as s:
        got, errors = s.read_sizes(bytes.fromhex(oid))
        assert (list(got), errors) == ([len(content)], {})
        check_sizes(s, list(truth))


# ---- the loops of odb/pack/sizes.py, C against Python --------------------------------------------------


def both(call):
    """call() under each built implementation; the answers must agree, and are returned."""
    answers = {}
    for name in available():
        with using(name):
            answers[name] = call()
    values = list(answers.values())
    assert all(v == values[0] for v in values), answers
    return values[0]


def table(ids: list[bytes], stride: int, at: int) -> SortedIds:
    """A SortedIds over ids as given (sorted or not): `at` bytes before them, each id `at` bytes
    into its stride, the fanout counted from their first bytes."""
    h = len(ids[0])
    counts = [0] * 256
    for raw in ids:
        counts[raw[0]] += 1
    fanout = tuple(sum(counts[: b + 1]) for b in range(256))
    buf = bytearray(b"\xaa" * at)
    for raw in ids:
        buf += raw + b"\xbb" * (stride - h)
    return SortedIds(bytes(buf), at, stride, h, fanout)


@pytest.mark.parametrize("count,buckets", [(0, 1), (1, 1), (60, 4), (3000, 4), (SUBFANOUT_MIN, 1),
                                           (SUBFANOUT_MIN + 1, 1)])
@pytest.mark.parametrize("layout", ["packed", "v1", "sha256"])
@pytest.mark.parametrize("order", ["sorted", "shuffled", "duplicates"])
def test_positions_are_find(count, buckets, layout, order):
    """On sorted tables and on damaged ones (out of order, an id twice): the same position
    SortedIds.find gives, or -1; big buckets go through the sub-fanout, small ones do not."""
    rng = random.Random(count)
    h = 32 if layout == "sha256" else 20
    first = [rng.randrange(buckets) for _ in range(count)]
    ids = sorted(bytes([f]) + rng.randbytes(h - 1) for f in first)
    if order == "duplicates" and count > 1:
        ids[count // 2] = ids[count // 3]
    if order == "shuffled":
        rng.shuffle(ids)
    t = table(ids, h + 4 if layout == "v1" else h, 1028 if layout == "v1" else 7) if ids else None
    if t is None:
        t = SortedIds(b"", 0, h, h, (0,) * 256)
    asked = ids + [rng.randbytes(h) for _ in range(50)] + [raw[:-1] + bytes([raw[-1] ^ 1]) for raw in ids[:50]]
    block = b"".join(asked)
    with using("python"):
        want = list(sizes.positions(t, block))
    assert want == [-1 if t.find(raw) is None else t.find(raw) for raw in asked]
    assert both(lambda: list(sizes.positions(t, block))) == want
    if order == "sorted":
        assert want[: len(ids)] == list(range(len(ids)))


@pytest.mark.parametrize("name", ["idx-v1", "idx-v2", "idx-v2-large", "midx", "sha256"])
def test_entries_are_entry_at(fixture_repo, name):
    repo = fixture_repo(name)
    with odb.open(repo.path) as s:
        for source in s._dirs[0].packs.sources:
            index = source.midx if hasattr(source, "midx") else source.pack.index
            found = array("q", list(range(index.count)) + [-1])
            which, offsets = both(lambda: sizes.entries(index, found))
            for i in range(index.count):
                assert (which[i], offsets[i]) == index.entry_at(i)
            assert which[-1] == sizes.MISSING


def test_entries_of_broken_large_offsets(fixture_repo):
    """A v2 index whose large-offset index points past its table: UNSURE (the careful path
    reports it); in a midx without LOFF, bit 31 is part of a raw offset."""
    from odb.pack.multi_pack_index import MultiPackIndex
    from odb.pack.index import PackIndex

    (idx_path,) = (fixture_repo("idx-v2-large").objects_dir / "pack").glob("*.idx")
    index = PackIndex(str(idx_path), odb.oid.SHA1)
    last = index.count - 1
    patched = bytearray(index.buf)
    struct.pack_into(">I", patched, index.entry_layout()[0] + 4 * last, 0x80000000 | 10_000_000)
    index.buf = bytes(patched)
    which, _ = both(lambda: sizes.entries(index, array("q", range(index.count))))
    assert which[last] == sizes.UNSURE and index.entry_at(last) is None

    midx = MultiPackIndex(str(damage.midx_path(fixture_repo("midx").objects_dir)), odb.oid.SHA1)
    ooff, *_, n_large = midx.entry_layout()
    assert n_large == -1
    patched = bytearray(midx.buf)
    struct.pack_into(">I", patched, ooff + 8 * 3 + 4, 0x80000123)
    midx.buf = bytes(patched)
    which, offsets = both(lambda: sizes.entries(midx, array("q", range(midx.count))))
    assert (which[3], offsets[3]) == midx.entry_at(3) and offsets[3] == 0x80000123


def pack_offsets(pack: Pack) -> list[int]:
    return sorted(pack.index.offset_at(i) for i in range(pack.index.count))


def python_size(pack: Pack, offset: int) -> int:
    try:
        return delta_chain.packed_size(pack, offset)
    except (odb.CorruptObject, OSError, ValueError):
        return -1


def sizes_at(pack: Pack, offsets: list[int]) -> list[int]:
    located = sizes.Located([pack], array("q", [0]) * len(offsets), array("q", offsets))
    return list(sizes.entry_sizes(located, pack.format.raw_len))


@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta", "bigblob", "sha256", "idx-v2-large"])
def test_entry_sizes_at_every_byte_offset(fixture_repo, name):
    """Entry offsets and every other byte offset of real packs (garbage to a header parser):
    the C loop answers exactly where packed_size does, with the same size."""
    repo = fixture_repo(name)
    fmt = odb.oid.SHA256 if name == "sha256" else odb.oid.SHA1
    for path in sorted((repo.objects_dir / "pack").glob("*.pack")):
        pack = Pack(str(path), fmt)
        size = path.stat().st_size
        entries = pack_offsets(pack)
        starts = set(entries)
        offsets = entries + [o for o in range(-3, min(size, 60_000) + 3) if o not in starts]
        want = [python_size(pack, o) for o in offsets]
        assert all(w >= 0 for w in want[: len(entries)])
        assert both(lambda: sizes_at(pack, offsets)) == want


def test_entry_sizes_read_through_a_descriptor(fixture_repo, monkeypatch):
    """A pack of 1 MiB or more is read with pread, not held in memory: the same answers."""
    monkeypatch.setattr("odb.pack.packfile.READ_WHOLE_BELOW", 0)
    repo = fixture_repo("deep-delta")
    (path,) = (repo.objects_dir / "pack").glob("*.pack")
    pack = Pack(str(path), odb.oid.SHA1)
    pack.ensure_open()
    assert pack._small is None and pack._desc is not None
    offsets = pack_offsets(pack)
    offsets += [o + 1 for o in offsets] + [path.stat().st_size - 20, 1 << 40]
    want = [python_size(pack, o) for o in offsets]
    assert both(lambda: sizes_at(pack, offsets)) == want


def test_entry_sizes_use_the_python_limits(fixture_repo, monkeypatch):
    """The limits are read from odb's Python modules at each call: lowering one refuses the same
    entries in C as in Python."""
    repo = fixture_repo("deep-delta")
    (path,) = (repo.objects_dir / "pack").glob("*.pack")
    pack = Pack(str(path), odb.oid.SHA1)
    offsets = pack_offsets(pack)
    before = both(lambda: sizes_at(pack, offsets))
    monkeypatch.setattr(delta_chain, "MAX_DELTA_RESULT", 300)
    monkeypatch.setattr("odb.pack.packfile.HEADER_READ", 24)
    after = both(lambda: sizes_at(pack, offsets))
    assert after == [python_size(pack, o) for o in offsets]
    assert any(a == -1 and b > 300 for a, b in zip(after, before))


def crafted_pack(tmp_path) -> tuple[Pack, dict[str, int]]:
    """A pack of entries each at one edge of a check of packed_size: name -> offset."""
    p = damage.PackBuilder()
    at = {}
    varint, header = damage.varint, damage.entry_header
    at["base"], _ = p.whole("blob", b"hello")
    base = at["base"]

    def delta(name: str, data: bytes, **kw) -> None:
        at[name] = p.ofs_delta(base, data, damage.checksum(name.encode(), 20), **kw)

    def raw(name: str, data: bytes) -> None:
        at[name] = p.raw(data, damage.checksum(name.encode(), 20))

    delta("delta", damage.insert_delta(5, b"world"))
    delta("varint of 9 bytes", varint(5) + b"\x80" * 8 + b"\x00" + b"\x05hello")
    delta("varint of 10 bytes", varint(5) + b"\x80" * 9 + b"\x00" + b"\x05hello")
    delta("base varint of 10 bytes", b"\x85" + b"\x80" * 8 + b"\x00" + varint(5) + b"\x05hello")
    # An 11-byte delta (5, then a 4-byte varint, then 6 bytes) can make 11 * MAX_DELTA_EXPANSION.
    delta("result just past the expansion limit", varint(5) + varint(11 * delta_chain.MAX_DELTA_EXPANSION + 1)
          + b"\x05hello")
    delta("result at the expansion limit", varint(5) + varint(11 * delta_chain.MAX_DELTA_EXPANSION) + b"\x05hello")
    delta("result over the limit", varint(5) + varint(delta_chain.MAX_DELTA_RESULT + 1) + b"\x05hello",
          claimed_size=1 << 20)
    delta("truncated sizes", b"\x85")
    delta("no data", b"")
    delta("claims too much", damage.insert_delta(5, b"world"), claimed_size=1 << 40)
    raw("ten size bytes", b"\xb0" + b"\x80" * 9 + b"\x00" + zlib.compress(b""))
    raw("nine size bytes", b"\xb0" + b"\x80" * 8 + b"\x00" + zlib.compress(b""))
    raw("type 0", header(0, 5) + zlib.compress(b"hello"))
    raw("type 5", header(5, 5) + zlib.compress(b"hello"))
    raw("distance 0", header(damage.OFS_DELTA, 12) + b"\x00" + zlib.compress(damage.insert_delta(5, b"world")))
    raw("distance past the start", header(damage.OFS_DELTA, 12) + damage.ofs_distance(p.next_offset - 11)
        + zlib.compress(damage.insert_delta(5, b"world")))
    raw("distance to the start", header(damage.OFS_DELTA, 12) + damage.ofs_distance(p.next_offset - 12)
        + zlib.compress(damage.insert_delta(5, b"world")))
    raw("endless distance", header(damage.OFS_DELTA, 12) + b"\xff" * 10 + b"\x01")
    raw("not zlib", header(damage.OFS_DELTA, 12) + damage.ofs_distance(p.next_offset - base) + b"not zlib data")
    with_dict = zlib.compressobj(zdict=b"hello world")
    raw("preset dictionary", header(damage.OFS_DELTA, 12) + damage.ofs_distance(p.next_offset - base)
        + with_dict.compress(damage.insert_delta(5, b"world")) + with_dict.flush())
    raw("ref delta", header(damage.REF_DELTA, 12) + damage.checksum(b"base", 20)
        + zlib.compress(damage.insert_delta(5, b"world")))
    # Empty stored blocks first: the delta's sizes come 150 bytes into the stream, past the first read.
    body = damage.insert_delta(5, b"w" * 120)
    late = (b"\x78\x01" + b"\x00\x00\x00\xff\xff" * 30 + b"\x01" + struct.pack("<HH", len(body), len(body) ^ 0xFFFF)
            + body + struct.pack(">I", zlib.adler32(body)))
    assert zlib.decompress(late) == body
    raw("late sizes", header(damage.OFS_DELTA, len(body)) + damage.ofs_distance(p.next_offset - base) + late)
    raw("ref delta cut at the end", header(damage.REF_DELTA, 12) + b"\x01" * 10)
    pack_path, _ = p.write(tmp_path / "objects" / "pack")
    return Pack(str(pack_path), odb.oid.SHA1), at


REFUSED = {"varint of 10 bytes", "base varint of 10 bytes", "result just past the expansion limit",
           "result over the limit", "truncated sizes", "no data", "claims too much", "ten size bytes",
           "type 0", "type 5", "distance 0", "distance past the start", "endless distance", "not zlib",
           "preset dictionary", "ref delta cut at the end"}


def test_crafted_entries(tmp_path):
    """Each check of packed_size, at its edge: C refuses exactly what Python refuses, and reads
    the same size from everything else."""
    pack, at = crafted_pack(tmp_path)
    names = sorted(at)
    want = [python_size(pack, at[name]) for name in names]
    assert {name for name, size in zip(names, want) if size < 0} == REFUSED
    assert both(lambda: sizes_at(pack, [at[name] for name in names])) == want
    got = dict(zip(names, want))
    assert got["delta"] == 5 and got["late sizes"] == 120 and got["distance to the start"] == 5
    assert got["ref delta"] == 5 and got["nine size bytes"] == 0 and got["varint of 9 bytes"] == 0
    assert got["result at the expansion limit"] == 11 * delta_chain.MAX_DELTA_EXPANSION


def test_the_c_functions_refuse_what_would_read_out_of_bounds():
    """Arguments that do not fit together (a fanout counting more ids than the table holds, one
    that decreases, output arrays of the wrong length, limits beyond the C buffers) are a
    ValueError or TypeError, never a read outside a buffer."""
    c = sizes.compiled
    if c is None:
        pytest.skip("odb._sizes is not built")
    ids = bytes(40)
    out = array("q", [0, 0])
    fanout = array("I", [2] * 256)
    for args in [(bytes(39), 0, 20, 20, fanout, 64, ids, out),          # 2 ids need 40 bytes
                 (bytes(40), 1, 20, 20, fanout, 64, ids, out),          # ... from its start
                 (bytes(40), 0, 20, 20, array("I", [2] * 255 + [1]), 64, ids, out),  # decreasing
                 (bytes(40), 0, 20, 20, array("I", [2] * 255), 64, ids, out),
                 (bytes(40), 0, 20, 20, fanout, 64, ids, array("q", [0])),
                 (bytes(40), 0, 20, 20, fanout, 64, ids[:-1], out),
                 (bytes(40), 0, 19, 20, fanout, 64, ids, out)]:
        with pytest.raises(ValueError):
            c.positions(*args)
    found, packs, offsets = array("q", [0, 5]), array("q", [0, 0]), array("q", [0, 0])
    with pytest.raises(ValueError):
        c.entries(bytes(44), found, 0, 8, True, 1, 0, -1, packs, offsets)  # entry 5 lies past the end
    with pytest.raises(ValueError):
        c.entries(bytes(48), found, 0, 8, True, 1, 40, 2, packs, offsets)  # LOFF past the end
    limits = sizes._limits(20)
    for bad in [(0, *limits[1:]), (20, 1 << 20, *limits[2:]), (*limits[:4], 10, *limits[5:]),
                (20, 128, 1024, 0, *limits[4:]), limits[:7]]:
        with pytest.raises(ValueError if len(bad) == 8 else TypeError):
            c.entry_sizes([None], found, offsets, out, bad)
    for source in [(b"x",), ("not a pack", 10), (-1, 10)]:
        with pytest.raises((TypeError, ValueError)):
            c.entry_sizes([source], array("q", [0, 0]), offsets, out, limits)
    c.entry_sizes([None], found, offsets, out, limits)
    assert list(out) == [-1, -1]


def test_batches_of_the_mount_cover_a_bucket(fixture_repo, implementation):
    """A bucket's ids, as a listing holds them, in the helper's batch size."""
    repo = fixture_repo("ambiguous")
    objects = repo.git.objects()
    with odb.open(repo.path) as s:
        for bucket in s.nonempty_buckets()[:8]:
            block = s.bucket_ids(bucket)
            n = s.format.raw_len
            for i in range(0, len(block), BATCH * n):
                got, errors = s.read_sizes(block[i : i + BATCH * n])
                chunk = [block[j : j + n].hex() for j in range(i, min(len(block), i + BATCH * n), n)]
                assert (list(got), errors) == ([objects[o][1] for o in chunk], {})
