"""The compiled object engine (odb/_engine.c) beside the Python chain walk: the same answers for
every object of every fixture, its batch calls, its shared cache, and reads without the GIL."""

from __future__ import annotations

import os
import random
import threading
import time
import zlib

import pytest

from damage import PackBuilder, hash_object, insert_delta
import odb
from odb.objects import delta_chain
from odb.objects.delta_chain import ChainReader, Location
from odb.pack.entry import OFS_DELTA

pytestmark = pytest.mark.skipif(delta_chain.compiled is None, reason="odb._engine is not built")
ENGINE = delta_chain.compiled


def _readers(store):
    """(engine reader, Python reader) over the store's lookups, each with its own cache."""
    return (ChainReader(store._find, 1 << 20, ENGINE),
            ChainReader(store._find, 1 << 20, pure=True))


def _packed(store, oids):
    return [(oid, loc) for oid in oids if (loc := store._find(bytes.fromhex(oid))) is not None and loc.pack]


def test_every_object_reads_and_types_as_in_python(any_repo):
    objects = any_repo.git.objects()
    with odb.open(any_repo.path) as store:
        fast, slow = _readers(store)
        for oid, loc in _packed(store, sorted(objects)):
            assert fast.read(loc) == slow.read(loc), oid
            assert fast.header(loc) == slow.header(loc) == (fast.read(loc)[0], objects[oid][1]), oid


@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta", "midx"])
def test_read_many_answers_in_the_order_asked(fixture_repo, name):
    repo = fixture_repo(name)
    with odb.open(repo.path) as store:
        by_pack: dict = {}
        for _, loc in _packed(store, repo.git.ids()):
            by_pack.setdefault(loc.pack, []).append(loc.offset)
        assert by_pack
        fast, slow = _readers(store)
        for pack, offsets in by_pack.items():
            random.Random(18).shuffle(offsets)
            offsets += offsets[:3] + [offsets[0] + 1]  # repeats, and an offset inside an entry
            want = []
            for offset in offsets:
                try:
                    want.append(slow.read(Location(None, pack, offset, b"")))
                except odb.CorruptObject as e:
                    want.append(("damaged", e.offset))
            got = [("damaged", a.offset) if isinstance(a, odb.CorruptObject) else a
                   for a in fast.read_many(pack, offsets)]
            assert got == want


def _pack_of(tmp_path, blobs: list[bytes]):
    """A pack of the blobs, each after the first an OFS_DELTA on the one before (an insert-only
    delta), and the offsets of their entries."""
    p = PackBuilder()
    offsets, ids = [], []
    for k, blob in enumerate(blobs):
        oid = hash_object("blob", blob)
        if k == 0:
            offsets.append(p.whole("blob", blob)[0])
        else:
            offsets.append(p.ofs_delta(offsets[-1], insert_delta(len(blobs[k - 1]), blob), oid))
        ids.append(oid)
    objects = tmp_path / "objects"
    (objects / "info").mkdir(parents=True)
    p.write(objects / "pack")
    return objects, ids


def test_the_cache_is_shared_and_bounded(tmp_path):
    blobs = [bytes([65 + k]) * (3000 + k) for k in range(40)]
    objects, ids = _pack_of(tmp_path, blobs)
    limit = 16 << 10
    with odb.open(objects, cache_size=limit) as store:
        cache = store._reader.cache
        assert isinstance(cache, ENGINE.Cache) and cache.limit == limit
        for oid, blob in zip(ids, blobs):
            assert store.read(oid.hex()) == ("blob", blob)
            assert cache.used <= limit
        assert len(cache) > 0  # bases were kept
        cache.clear()
        assert len(cache) == 0 and cache.used == 0
        # Nothing over a quarter of the limit is kept, as odb.lru.ByteLRU does.
    with odb.open(objects, cache_size=4 * 3000 - 1) as store:
        store.read(ids[-1].hex())
        assert len(store._reader.cache) == 0


def test_threads_read_the_same_objects_through_one_cache(fixture_repo):
    repo = fixture_repo("deep-delta")
    truth = {oid: (kind, data) for oid, kind, data in repo.git.contents(repo.git.ids())}
    with odb.open(repo.path) as store:
        failures = []

        def work(seed):
            ids = list(truth)
            random.Random(seed).shuffle(ids)
            for oid in ids * 3:
                if store.read(oid) != truth[oid]:
                    failures.append(oid)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures


def test_a_read_releases_the_gil(tmp_path):
    """Another thread runs while the engine inflates: it counts all through a long read. (With the
    GIL held for the call, it could not count at all until the call returned.)"""
    blob = random.Random(1).randbytes(48 << 20)
    p = PackBuilder()
    offset, _ = p.whole("blob", blob, oid=bytes(20), compressed=zlib.compress(blob, 1))
    pack = p.pack_bytes()
    cache = ENGINE.Cache(1 << 20)
    counted = []
    stop = threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    while not counted:
        time.sleep(0.001)
    try:
        before = len(counted)
        start = time.perf_counter()
        (code, data), _ = ENGINE.read(cache, pack, len(pack) - 20, offset, 1, None,
                                      delta_chain.engine_limits(20), 0, None, False)
        took = time.perf_counter() - start
        during = len(counted) - before
    finally:
        stop.set()
        t.join()
    assert (code, data == blob) == (3, True)
    assert took > 0.01
    assert during > 1000, f"the other thread counted {during} in {took:.3f} s"


def _offsets_by_pack(store, oids) -> dict:
    by_pack: dict = {}
    for _, loc in _packed(store, oids):
        by_pack.setdefault(loc.pack, []).append(loc.offset)
    return by_pack


def _headers_both_ways(path, data: bytes, end: int, offsets: list, raw_len: int):
    """headers() of the same bytes from the buffer, and with pread through a descriptor."""
    limits = delta_chain.engine_limits(raw_len)
    mapped, _ = ENGINE.headers(data, end, offsets, None, limits)
    fd = os.open(path, os.O_RDONLY)
    try:
        read, _ = ENGINE.headers(data, end, offsets, None, limits, fd)
    finally:
        os.close(fd)
    return mapped, read


@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta", "midx", "bigblob"])
def test_headers_read_with_pread_answer_as_from_the_mapping(fixture_repo, name, tmp_path):
    """With the pack's descriptor, headers are read with pread (nothing mapped): every entry's
    answer, and those of offsets inside entries (damage), are the mapping's, byte for byte."""
    repo = fixture_repo(name)
    with odb.open(repo.path) as store:
        for pack, offsets in _offsets_by_pack(store, repo.git.ids()).items():
            data = open(pack.pack_path, "rb").read()
            end = len(data) - pack.format.raw_len
            offsets = sorted(offsets) + [offsets[0] + 1, offsets[-1] + 2, 12, end - 1]
            mapped, read = _headers_both_ways(pack.pack_path, data, end, offsets, pack.format.raw_len)
            assert read == mapped
            # And the descriptor's bytes are what is read: zeros there are "invalid entry type 0".
            zeros = tmp_path / "zeros.pack"
            zeros.write_bytes(bytes(len(data)))
            _, from_zeros = _headers_both_ways(zeros, data, end, offsets[:3], pack.format.raw_len)
            assert all(answer[0] == -1 and "invalid entry type 0" in answer[2] for answer in from_zeros)


def _damaged_copies(fixture_repo, seed: int, copies: int = 30):
    """(bytes, data end, entry offsets, raw_len) of the deep-delta fixture's pack with 1 to 12
    random bytes overwritten (never the 12-byte header), copies times."""
    repo = fixture_repo("deep-delta")
    with odb.open(repo.path) as store:
        (pack, offsets), *_ = _offsets_by_pack(store, repo.git.ids()).items()
        original = open(pack.pack_path, "rb").read()
        raw_len = pack.format.raw_len
    end = len(original) - raw_len
    rng = random.Random(seed)
    for _ in range(copies):
        data = bytearray(original)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(12, end)] = rng.randrange(256)
        yield bytes(data), end, sorted(offsets), raw_len


def test_headers_read_with_pread_answer_as_from_the_mapping_in_damaged_packs(fixture_repo, tmp_path):
    """Random bytes of a pack overwritten, 30 times: pread and the mapping see the same bytes, and
    every answer (types, sizes, and each damage's offset and reason) is the same both ways, the
    deltas whose first bytes run past one pread included."""
    path = tmp_path / "damaged.pack"
    for data, end, offsets, raw_len in _damaged_copies(fixture_repo, 17):
        path.write_bytes(data)
        mapped, read = _headers_both_ways(path, data, end, offsets, raw_len)
        assert read == mapped


def _headers_with_memo(data: bytes, end: int, offsets: list, raw_len: int, memo, order: list):
    """headers() of each offset alone, in the given order, through one memo: the answers by offset."""
    limits = delta_chain.engine_limits(raw_len)
    return {at: ENGINE.headers(data, end, (at,), None, limits, -1, memo, 7)[0][0] for at in order}


@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta", "midx"])
def test_header_walks_through_the_kinds_memo_answer_as_without_it(fixture_repo, name):
    """Each entry typed alone, in random orders, through one memo (so that later walks stop where
    earlier ones typed an entry): the answers are those of walks without a memo."""
    repo = fixture_repo(name)
    with odb.open(repo.path) as store:
        for pack, offsets in _offsets_by_pack(store, repo.git.ids()).items():
            data = open(pack.pack_path, "rb").read()
            end = len(data) - pack.format.raw_len
            limits = delta_chain.engine_limits(pack.format.raw_len)
            plain = dict(zip(sorted(offsets), ENGINE.headers(data, end, sorted(offsets), None, limits)[0]))
            for seed in range(3):
                order = sorted(offsets)
                random.Random(seed).shuffle(order)
                memo = ENGINE.Kinds(1 << 20)
                assert _headers_with_memo(data, end, offsets, pack.format.raw_len, memo, order) == plain
                assert _headers_with_memo(data, end, offsets, pack.format.raw_len, memo, order) == plain


def test_header_walks_through_the_kinds_memo_in_damaged_packs(fixture_repo):
    """Random bytes overwritten, 30 times: through a memo, cold and then warm, every answer
    (types, sizes, each damage's offset and reason) is that of a walk without one. A walk that
    fails types nothing, so no later walk takes a damaged chain for a typed one."""
    rng = random.Random(19)
    for data, end, offsets, raw_len in _damaged_copies(fixture_repo, 19):
        limits = delta_chain.engine_limits(raw_len)
        plain = dict(zip(offsets, ENGINE.headers(data, end, offsets, None, limits)[0]))
        memo = ENGINE.Kinds(1 << 20)
        order = list(offsets)
        rng.shuffle(order)
        assert _headers_with_memo(data, end, offsets, raw_len, memo, order) == plain
        assert _headers_with_memo(data, end, offsets, raw_len, memo, order[::-1]) == plain


def test_the_kinds_memo_is_filled_by_walks_read_by_them_and_bounded(fixture_repo):
    repo = fixture_repo("deep-delta")
    with odb.open(repo.path) as store:
        (pack, offsets), *_ = _offsets_by_pack(store, repo.git.ids()).items()
        data = open(pack.pack_path, "rb").read()
        raw_len = pack.format.raw_len
        entries = {at: pack.header(at)[0] for at in sorted(offsets)}  # odb's own parse of each
    end = len(data) - raw_len
    limits = delta_chain.engine_limits(raw_len)
    answers = dict(zip(sorted(offsets), ENGINE.headers(data, end, sorted(offsets), None, limits)[0]))
    deltas = [at for at, entry in entries.items() if entry.type == OFS_DELTA]
    assert deltas, "the fixture has OFS_DELTA entries"
    top = deltas[-1]
    memo = ENGINE.Kinds(1 << 20)
    ENGINE.headers(data, end, (top,), None, limits, -1, memo, 7)
    assert len(memo) >= 2 and memo.get(7, top) == answers[top][0]  # the top and the base below it
    assert memo.get(8, top) is None  # another pack's key: nothing known
    # A walk trusts the memo (only walks fill it, from the headers they parsed): a type planted
    # at the entry under the top is what the top then shows.
    base = entries[top].base_offset
    planted = ENGINE.Kinds(1 << 20)
    other = 4 if answers[top][0] != 4 else 3
    planted.put(7, base, other)
    assert ENGINE.headers(data, end, (top,), None, limits, -1, planted, 7)[0][0] == (other, answers[top][1])
    # Bounded: past its limit the memo starts again.
    small = ENGINE.Kinds(2)
    for at in deltas:
        ENGINE.headers(data, end, (at,), None, limits, -1, small, 7)
        assert len(small) <= 2
    with pytest.raises(ValueError):
        planted.put(7, 0, 1)
    with pytest.raises(TypeError):
        ENGINE.headers(data, end, (top,), None, limits, -1, object(), 7)

