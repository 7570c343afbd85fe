"""SortedIds: exact and prefix search against a brute-force reference, through both the
plain fanout (small buckets) and the second-level fanout (buckets over SUBFANOUT_MIN ids),
for packed tables (.idx v2, multi-pack-index) and interleaved ones (.idx v1)."""

from __future__ import annotations

import bisect
import mmap
import random
import struct

import pytest

from odb.pack import fanout as fanout_module
from odb.pack.fanout import SUBFANOUT_MIN, SortedIds
from odb.oid import Prefix


def table(ids: list[bytes], stride: int) -> SortedIds:
    """ids (sorted) laid out as a real index would: v1 puts 4 offset bytes before each id."""
    h = len(ids[0])
    pad = stride - h
    buf = b"XXXX" + b"".join(struct.pack(">I", k)[:pad] + raw for k, raw in enumerate(ids))
    fanout = tuple(bisect.bisect_right([raw[0] for raw in ids], b) for b in range(256))
    return SortedIds(buf, 4 + pad, stride, h, fanout)


def make_ids(rng: random.Random, n: int, h: int = 20) -> list[bytes]:
    ids = {rng.randbytes(h) for _ in range(n)}
    # A crowded bucket (first byte 0x5a) with shared second bytes, and ids that differ
    # only in their last byte: the cases a sub-fanout and an unaligned match could get wrong.
    ids.update(b"\x5a" + bytes([rng.randrange(4)]) + rng.randbytes(h - 2) for _ in range(3 * SUBFANOUT_MIN))
    stem = rng.randbytes(h - 1)
    ids.update(stem + bytes([k]) for k in range(0, 256, 7))
    # Ids whose second half starts like their bucket: bytes read across one of them and
    # the next look like an id of that very bucket, at a position that is no id's.
    ids.update(b"\x5a\x01" + rng.randbytes(8) + b"\x5a\x01" + rng.randbytes(h - 12) for _ in range(20))
    return sorted(ids)


@pytest.mark.parametrize("stride_extra", [0, 4], ids=["packed", "v1-interleaved"])
@pytest.mark.parametrize("n", [50, 20_000])
def test_find_and_lower_bound_agree_with_a_sorted_list(n, stride_extra):
    rng = random.Random(n + stride_extra)
    ids = make_ids(rng, n)
    t = table(ids, 20 + stride_extra)
    for k, raw in enumerate(ids):
        assert t.find(raw) == k
    probes = [rng.randbytes(20) for _ in range(3000)]
    probes += [raw[:-1] + bytes([(raw[-1] + 1) % 256]) for raw in ids[::7]]  # near misses
    # Bytes that straddle two neighbouring ids (and, in v1, an id and its offset).
    straddling = [k for k, raw in enumerate(ids[:-1]) if raw[10:12] == b"\x5a\x01"]
    assert straddling
    for k in straddling + list(range(0, len(ids) - 1, 11)):
        p = t.start + k * t.stride + 10
        probes.append(bytes(t.buf[p : p + 20]))
    present = set(ids)
    for raw in probes:
        assert t.find(raw) == (ids.index(raw) if raw in present else None)
    for raw in probes + ids:
        for cut in (1, 2, 3, 20):
            prefix = raw[:cut]
            assert t.lower_bound(prefix) == bisect.bisect_left(ids, prefix), prefix.hex()


def test_prefix_matches_in_a_crowded_bucket():
    rng = random.Random(7)
    ids = make_ids(rng, 5000)
    t = table(ids, 20)
    crowded = [raw for raw in ids if raw[0] == 0x5A]
    assert len(crowded) > SUBFANOUT_MIN
    for raw in crowded[::9]:
        for digits in (4, 5, 6, 9):
            hex_prefix = raw.hex()[:digits]
            want = [r for r in ids if r.hex().startswith(hex_prefix)]
            got = list(t.prefix_matches(Prefix.from_hex(hex_prefix), 1000))
            assert got == want


class RecordingMap(mmap.mmap):
    """A real mapping that remembers its madvise calls."""

    def madvise(self, *args):
        self.advised = getattr(self, "advised", []) + [args]
        return super().madvise(*args)


def test_a_mapped_table_gives_its_pages_back_after_bulk_reads(tmp_path, monkeypatch):
    """Walking every bucket touches the whole table: past the budget the mapping is released
    (MADV_DONTNEED), and what it answers after that is unchanged."""
    rng = random.Random(5)
    ids = sorted({rng.randbytes(20) for _ in range(3000)})
    fanout = tuple(bisect.bisect_right([i[0] for i in ids], b) for b in range(256))
    path = tmp_path / "table"
    path.write_bytes(b"".join(ids))
    monkeypatch.setattr(fanout_module, "RESIDENT_BUDGET", 16 * 1024)
    with open(path, "rb") as f:
        buf = RecordingMap(f.fileno(), 0, prot=mmap.PROT_READ)
    table = SortedIds(buf, 0, 20, 20, fanout)
    blocks = [table.bucket_block(b) for b in range(256)]  # 60 KB read in bulk
    assert getattr(buf, "advised", None) and set(buf.advised) == {(mmap.MADV_DONTNEED,)}, getattr(buf, "advised", None)
    assert b"".join(blocks) == b"".join(ids)
    assert [table.bucket_block(b) for b in range(256)] == blocks
    assert all(table.find(i) == k for k, i in enumerate(ids))
    buf.close()
