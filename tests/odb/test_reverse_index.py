"""Reverse indexes (odb/pack/reverse_index.py): a pack's .rev file and a multi-pack-index's RIDX chunk name
OFS_DELTA bases (offset -> id) when they are valid; damaged ones are ignored and the table is built
from the .idx instead, with the same answers as git."""

from __future__ import annotations

import logging
import os
import struct

import pytest

import damage
import odb
from format_fixtures import Answers, format_copy, repo_path  # noqa: F401 - format_copy is a fixture
from odb.pack import index as pack_index, reverse_index
from odb.pack.multi_pack_index import MultiPackIndex


def warned(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def check_delta_bases(store, answers: Answers) -> int:
    """Every object's delta base is the one git names; returns how many are OFS or REF deltas."""
    deltas = 0
    for oid in answers.objects:
        base = store.locate(oid).delta_base
        assert base == answers.deltas[oid], oid
        deltas += base is not None
    return deltas


@pytest.fixture
def no_built_table(monkeypatch):
    """Fails any attempt to build the reverse index from the .idx."""
    def refuse(*a, **kw):
        raise AssertionError("the reverse index was built from the .idx")

    monkeypatch.setattr(reverse_index.BuiltReverseIndex, "__init__", refuse)


@pytest.fixture
def built(monkeypatch):
    """Counts reverse indexes built from the .idx."""
    made = []
    real = reverse_index.BuiltReverseIndex.__init__

    def init(self, count, offset_at):
        made.append(count)
        real(self, count, offset_at)

    monkeypatch.setattr(reverse_index.BuiltReverseIndex, "__init__", init)
    return made


def rev_file(repo) -> os.PathLike:
    (rev,) = (repo / "objects" / "pack").glob("*.rev")
    return rev


# ---- .rev files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rev", "rev-sha256"])
def test_delta_bases_come_from_the_rev_file(name, no_built_table, caplog):
    answers = Answers.load(name)
    with odb.open(repo_path(name)) as store:
        assert check_delta_bases(store, answers) >= 5
    assert not warned(caplog, "reverse index")


def test_without_a_rev_file_the_table_is_built(format_copy, built, caplog):
    repo = format_copy("rev")
    os.unlink(rev_file(repo))
    with odb.open(repo) as store:
        assert check_delta_bases(store, Answers.load("rev")) >= 5
    assert built == [len(Answers.load("rev").objects)]  # once, for the one pack
    assert not warned(caplog, "reverse index")  # no .rev is normal, not damage


def _rewrite(path, edit):
    data = bytearray(open(path, "rb").read())
    edit(data)
    damage.replace(path, bytes(data))


def _set_u32(offset, value):
    return lambda data: data.__setitem__(slice(offset, offset + 4), struct.pack(">I", value))


def _truncated(path, raw_len):
    damage.truncate(path, -1)


def _too_long(path, raw_len):
    _rewrite(path, lambda d: d.extend(b"\0\0\0\0"))


def _bad_magic(path, raw_len):
    _rewrite(path, lambda d: d.__setitem__(slice(0, 4), b"RIDY"))


def _bad_version(path, raw_len):
    _rewrite(path, _set_u32(4, 2))


def _other_hash(path, raw_len):
    _rewrite(path, _set_u32(8, 2 if raw_len == 20 else 1))


def _other_pack(path, raw_len):
    damage.flip(path, -raw_len - 1)  # the last byte of the pack checksum


def _position_out_of_range(path, raw_len):
    n = (os.path.getsize(path) - 12 - 2 * raw_len) // 4
    _rewrite(path, _set_u32(12 + 4 * (n // 2), 0xFFFFFF00))  # the first entry every bisect reads


def _fifo(path, raw_len):
    os.unlink(path)
    os.mkfifo(path)


BAD_REV = {
    "truncated": _truncated,
    "too-long": _too_long,
    "bad-signature": _bad_magic,
    "bad-version": _bad_version,
    "other-hash-id": _other_hash,
    "other-pack": _other_pack,
    "position-out-of-range": _position_out_of_range,
    "fifo": _fifo,
}


@pytest.mark.parametrize("name", ["rev", "rev-sha256"])
@pytest.mark.parametrize("case", sorted(BAD_REV))
def test_damaged_rev_file_falls_back_to_a_built_table(format_copy, built, caplog, name, case):
    repo = format_copy(name)
    answers = Answers.load(name)
    BAD_REV[case](rev_file(repo), 32 if name.endswith("sha256") else 20)
    with odb.open(repo) as store:
        assert check_delta_bases(store, answers) >= 5
    assert built, "the damaged .rev was used as it is"
    assert warned(caplog, "reverse index")


def test_swapped_rev_entries_never_name_a_wrong_base(format_copy, caplog):
    """Two positions swapped: a lookup through the file may miss, and a miss is confirmed from the
    .idx, so every answer is still git's."""
    repo = format_copy("rev")
    path = rev_file(repo)
    data = bytearray(path.read_bytes())
    n = (len(data) - 12 - 40) // 4
    for a, b in ((1, n - 2), (n // 2, n // 2 + 1)):
        pa, pb = 12 + 4 * a, 12 + 4 * b
        data[pa:pa + 4], data[pb:pb + 4] = data[pb:pb + 4], data[pa:pa + 4]
    damage.replace(path, bytes(data))
    with odb.open(repo) as store:
        check_delta_bases(store, Answers.load("rev"))


def test_rev_file_matches_the_built_table():
    """For every entry of the pack, the .rev file and the table built from the .idx agree."""
    pack = next((repo_path("rev") / "objects" / "pack").glob("*.idx"))
    index = pack_index.PackIndex(str(pack), odb.SHA1)
    rev = reverse_index.ReverseIndexFile(index.rev_path, odb.SHA1, index.count, index.pack_checksum,
                                         index.offset_at)
    table = reverse_index.BuiltReverseIndex(index.count, index.offset_at)
    offsets = [index.offset_at(i) for i in range(index.count)]
    for i, offset in enumerate(offsets):
        assert rev.position_of(offset) == table.position_of(offset) == i
    for offset in (0, 11, max(offsets) + 1, offsets[0] + 1):
        assert rev.position_of(offset) is None and table.position_of(offset) is None


# ---- the multi-pack-index RIDX chunk ----------------------------------------------------------------


def midx_path(repo):
    return repo / "objects" / "pack" / "multi-pack-index"


def test_ridx_finds_every_entry():
    midx = MultiPackIndex(midx_path(repo_path("midx-ridx")), odb.SHA1)
    entries = [midx.entry_at(i) for i in range(midx.count)]
    assert [midx.position_at_offset(p, o) for p, o in entries] == list(range(midx.count))
    # The preferred pack (not pack id 0) comes first in pseudo-pack order: the case the
    # bisect key must handle.
    (first,) = struct.unpack_from(">I", midx.buf, midx._ridx)
    assert entries[first][0] != 0


@pytest.fixture
def no_pack_reverse_index(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("a pack's own reverse index was asked")

    monkeypatch.setattr(pack_index.PackIndex, "id_at_offset", refuse)


def test_delta_bases_come_from_the_midx_ridx(no_pack_reverse_index, caplog):
    answers = Answers.load("midx-ridx")
    with odb.open(repo_path("midx-ridx")) as store:
        assert damage.midx_layers(store) == 1
        assert check_delta_bases(store, answers) >= 5
    assert not warned(caplog, "reverse index")


def test_delta_bases_come_from_the_ridx_of_each_chain_layer(no_pack_reverse_index):
    answers = Answers.load("midx-chain-bitmap")
    with odb.open(repo_path("midx-chain-bitmap")) as store:
        assert damage.midx_layers(store) == 3
        assert check_delta_bases(store, answers) >= 5


def _ridx_wrong_size(m):
    m.set_chunk(b"RIDX", m.chunk(b"RIDX")[:-4])


def _ridx_out_of_range(m):
    data = bytearray(m.chunk(b"RIDX"))
    mid = 4 * (len(data) // 8)  # the first entry every bisect reads
    data[mid:mid + 4] = struct.pack(">I", 0xFFFFFFF0)
    m.set_chunk(b"RIDX", bytes(data))


def _ridx_swapped(m):
    data = bytearray(m.chunk(b"RIDX"))
    data[0:4], data[-4:] = data[-4:], data[0:4]
    m.set_chunk(b"RIDX", bytes(data))


@pytest.mark.parametrize("edit,warning", [(_ridx_wrong_size, None), (_ridx_out_of_range, "reverse index"),
                                          (_ridx_swapped, None)],
                         ids=["wrong-size", "entry-out-of-range", "entries-swapped"])
def test_damaged_ridx_leaves_the_midx_in_use(format_copy, caplog, edit, warning):
    """The RIDX chunk is optional: a damaged one is not used (the packs' own reverse indexes
    answer), and the multi-pack-index still serves every object."""
    repo = format_copy("midx-ridx")
    m = damage.Midx.read(midx_path(repo))
    edit(m)
    m.write(midx_path(repo))
    answers = Answers.load("midx-ridx")
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 1
        check_delta_bases(store, answers)
    assert not warned(caplog, "ignoring the multi-pack-index")
    said = [r for r in caplog.records if "reverse index" in r.getMessage()]
    assert len(said) == (1 if warning else 0)  # a damaged chunk is reported once, then left alone
