"""Incremental multi-pack-index chains (odb/pack/midx_chain.py): lookups go through every layer, a plain
multi-pack-index wins as in git, the chain reloads when it changes, and any damaged layer or chain
file means plain pack scanning, with every object still served."""

from __future__ import annotations

import logging
import os
import struct
import time

import pytest

import damage
import odb
from format_fixtures import (  # noqa: F401 - format_copy is a pytest fixture
    Answers,
    chain_file,
    chain_names,
    check_against_answers,
    format_copy,
    layer_path,
    rewrite_layer,
    write_chain,
)
from odb.pack import index as pack_index, midx_chain
from odb.pack.midx_chain import MAX_CHAIN_BYTES
from odb.pack.multi_pack_index import MultiPackIndex
from oracle import Git

NAME = "midx-chain"


@pytest.fixture(scope="module")
def answers() -> Answers:
    return Answers.load(NAME)


@pytest.fixture
def repo(format_copy):
    return format_copy(NAME)


def warned(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def scanning(store) -> bool:
    """Plain pack scanning: no multi-pack-index of any kind is in use."""
    return damage.midx_layers(store) == 0


# ---- a valid chain --------------------------------------------------------------------------------


def test_pristine_chain_is_used(repo, answers, caplog):
    with odb.open(repo) as store:
        assert damage.midx_chained(store) and damage.midx_layers(store) == 3
        check_against_answers(store, answers)
    assert not warned(caplog, "multi-pack-index")


class CountingIds:
    """A pack index's id table that counts the searches made in it."""

    SEARCHES = ("find", "lower_bound", "prefix_matches", "bucket_block", "ids_in_bucket")

    def __init__(self, ids, use):
        self._ids = ids
        self._use = use

    def __getattr__(self, name):
        value = getattr(self._ids, name)
        if name in self.SEARCHES:
            self._use.searches += 1
        return value


class IndexUse:
    """Which .idx files are opened, and how often one is searched."""

    def __init__(self, monkeypatch):
        self.opened: list[str] = []
        self.searches = 0
        real_init = pack_index.PackIndex.__init__

        def init(index, path, fmt):
            real_init(index, path, fmt)
            self.opened.append(os.path.basename(path))
            index.ids = CountingIds(index.ids, self)

        monkeypatch.setattr(pack_index.PackIndex, "__init__", init)


def chain_objects(repo) -> dict[str, str]:
    """id -> the .idx name of its pack, for every object a layer of the chain lists."""
    out = {}
    for name in chain_names(repo):
        layer = damage.Midx.read(layer_path(repo, name), len(name) // 2)
        packs = [n.decode() for n in layer.pack_names()]
        for raw, (pack_id, _) in zip(layer.ids(), layer.ooff()):
            out[raw.hex()] = packs[pack_id]
    return out


@pytest.mark.parametrize("name", ["midx-chain", "midx-chain-compacted", "midx-chain-sha256"])
def test_lookups_go_through_the_chain(format_copy, monkeypatch, name):
    """With a valid chain, finding an object searches no pack's .idx, and opens at most the .idx of
    the pack that holds it (to check that pack against its index before reading it, as git's
    open_packed_git does), never the index of another pack."""
    repo = format_copy(name)
    objects = chain_objects(repo)
    use = IndexUse(monkeypatch)
    with odb.open(repo) as store:
        assert damage.midx_chained(store)
        backend = store._dirs[0].packs
        for oid, idx in objects.items():
            before = len(use.opened)
            hit = backend.find(bytes.fromhex(oid))
            assert hit is not None and hit[0].name == idx[:-4] + ".pack"
            assert set(use.opened[before:]) <= {idx}, oid
        assert use.searches == 0
        assert sorted(use.opened) == sorted(set(objects.values()))  # each opened once


def test_prefixes_and_listings_come_from_the_chain(format_copy, monkeypatch):
    """Every object of midx-chain-compacted is in its chain: abbreviations and listings search
    no pack's own index."""
    repo = format_copy("midx-chain-compacted")
    answers = Answers.load("midx-chain-compacted")
    assert set(chain_objects(repo)) == set(answers.objects)
    use = IndexUse(monkeypatch)
    with odb.open(repo) as store:
        check_against_answers(store, answers, deltas=False)
    assert use.searches == 0
    assert use.opened  # the packs were checked against their indexes before being read


def test_lookups_without_the_chain_search_the_pack_indexes(format_copy, monkeypatch):
    """The control for the tests above: with the chain unusable, the same calls search indexes."""
    repo = format_copy("midx-chain-compacted")
    layer_path(repo, chain_names(repo)[0]).unlink()
    use = IndexUse(monkeypatch)
    with odb.open(repo) as store:
        assert scanning(store)
        check_against_answers(store, Answers.load("midx-chain-compacted"), deltas=False)
    assert use.searches > 0


def test_a_layers_ridx_counts_positions_from_its_base(format_copy):
    """In a chain with bitmaps, each layer's RIDX entries are positions in the chain's one id
    space (they start after the objects of the layers below). Read with its base count, a layer
    finds every entry through its RIDX; read as if it had no base, the upper layers find none."""
    repo = format_copy("midx-chain-bitmap")
    names = chain_names(repo)
    base = 0
    for k, name in enumerate(names):
        layer = MultiPackIndex(layer_path(repo, name), odb.SHA1, layer=k, base_objects=base)
        assert layer.has_reverse_index
        entries = [layer.entry_at(i) for i in range(layer.count)]
        assert [layer.position_at_offset(p, o) for p, o in entries] == list(range(layer.count))
        if k:
            alone = MultiPackIndex(layer_path(repo, name), odb.SHA1)
            with pytest.raises(odb.CorruptObject):
                alone.position_at_offset(*entries[0])
        base += layer.count
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        check_against_answers(store, Answers.load("midx-chain-bitmap"))


# ---- a plain multi-pack-index wins ------------------------------------------------------------------


def write_plain_midx_with_git(repo) -> None:
    """git 2.39 (CI's git) writes a plain multi-pack-index over every pack, and leaves the chain."""
    Git(repo).run("multi-pack-index", "write")
    assert (repo / "objects" / "pack" / "multi-pack-index").exists() and chain_file(repo).exists()


def test_plain_midx_wins_over_the_chain(repo, answers):
    write_plain_midx_with_git(repo)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 1 and not damage.midx_chained(store)
        check_against_answers(store, answers)


def test_chain_is_used_when_the_plain_midx_fails_to_load(repo, answers, caplog):
    """git's load_multi_pack_index reads the chain when the plain file does not load."""
    write_plain_midx_with_git(repo)
    damage.damage_midx(repo / "objects", "bad-hash-version")
    with odb.open(repo) as store:
        assert damage.midx_chained(store) and damage.midx_layers(store) == 3
        check_against_answers(store, answers)
    assert warned(caplog, "ignoring the multi-pack-index")


def test_refresh_moves_between_plain_midx_and_chain(repo, answers):
    with odb.open(repo) as store:
        assert damage.midx_chained(store)
        write_plain_midx_with_git(repo)
        assert store.refresh()
        assert damage.midx_layers(store) == 1 and not damage.midx_chained(store)
        (repo / "objects" / "pack" / "multi-pack-index").unlink()
        assert store.refresh()
        assert damage.midx_chained(store) and damage.midx_layers(store) == 3
        assert store.refresh() is False
        check_against_answers(store, answers)


# ---- refresh --------------------------------------------------------------------------------------


def test_refresh_reloads_a_changed_chain(repo, answers):
    names = chain_names(repo)
    with odb.open(repo) as store:
        assert store.refresh() is False  # nothing changed: nothing reloaded
        write_chain(repo, names[:2])  # a valid, shorter chain: the top layer's pack is now outside
        assert store.refresh()
        assert damage.midx_layers(store) == 2
        check_against_answers(store, answers)
        write_chain(repo, names)
        assert store.refresh()
        assert damage.midx_layers(store) == 3
        check_against_answers(store, answers)


def test_layer_damaged_after_load_falls_back_on_refresh(repo, answers, caplog):
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        path = layer_path(repo, chain_names(repo)[1])
        damage.truncate(path, path.stat().st_size // 2)
        assert store.refresh()
        assert scanning(store)
        check_against_answers(store, answers)
    assert warned(caplog, "multi-pack-index chain")


def test_chain_deleted_after_load(repo, answers):
    with odb.open(repo) as store:
        chain_file(repo).unlink()
        assert store.refresh()
        assert scanning(store)
        check_against_answers(store, answers)


def test_pack_deleted_from_under_a_loaded_chain(repo, answers):
    layer = damage.Midx.read(layer_path(repo, chain_names(repo)[1]))
    (idx_name,) = [n.decode() for n in layer.pack_names()]
    pack = repo / "objects" / "pack" / (idx_name[:-4] + ".pack")
    gone = damage.ids_in(pack)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        for suffix in (".pack", ".idx", ".rev"):
            pack.with_suffix(suffix).unlink()
        store.refresh()
        assert damage.midx_layers(store) == 3  # the chain itself is intact
        check_against_answers(store, answers, gone=frozenset(gone))


def test_broken_layer_entry_falls_through_to_the_pack_index(repo, answers):
    """A pack id out of range in one layer's entry fails that entry only."""
    victim = {}

    def break_entry(m):
        entries = m.ooff()
        k = len(entries) // 2
        victim["oid"] = m.ids()[k].hex()
        entries[k] = (99, entries[k][1])
        m.set_chunk(b"OOFF", damage.encode_ooff(entries))

    rewrite_layer(repo, 1, break_entry)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        assert store.read(victim["oid"])[0] == answers.objects[victim["oid"]][0]
        check_against_answers(store, answers)


# ---- damage: the chain is not used, every object is still served ------------------------------------


def _truncate_layer(repo):
    path = layer_path(repo, chain_names(repo)[1])
    damage.truncate(path, path.stat().st_size // 2)


def _truncate_layer_trailer(repo):
    damage.truncate(layer_path(repo, chain_names(repo)[2]), -1)


def _flip_layer_trailer(repo):
    damage.flip(layer_path(repo, chain_names(repo)[0]), -1)


def _wrong_base_count(repo):
    def edit(m):
        m.base_count = 5  # neither 0 (what git writes) nor the layer's place in the chain

    rewrite_layer(repo, 1, edit)


def _wrong_hash_version(repo):
    def edit(m):
        m.hash_version = 2

    rewrite_layer(repo, 2, edit)


def _bad_layer_signature(repo):
    def edit(m):
        m.magic = b"MIDY"

    rewrite_layer(repo, 0, edit)


def _missing_layer_file(repo):
    layer_path(repo, chain_names(repo)[1]).unlink()


def _chain_names_an_absent_layer(repo):
    names = chain_names(repo)
    names[2] = "0123456789abcdef0123456789abcdef01234567"
    write_chain(repo, names)


def _duplicate_layer(repo):
    names = chain_names(repo)
    write_chain(repo, [names[0], names[1], names[0]])


def _cycle(repo):
    names = chain_names(repo)
    write_chain(repo, names + names)


def _line_not_a_hash(repo):
    names = chain_names(repo)
    names[1] = names[1][:-1] + "g"
    write_chain(repo, names)


def _line_too_short(repo):
    names = chain_names(repo)
    names[1] = names[1][:-2]
    write_chain(repo, names)


def _no_final_newline(repo):
    damage.replace(chain_file(repo), "\n".join(chain_names(repo)).encode())


def _huge_chain_file(repo):
    names = chain_names(repo)
    damage.replace(chain_file(repo), "".join(f"{names[k % 3]}\n" for k in range(200_000)).encode())


def _chain_file_a_directory(repo):
    chain_file(repo).unlink()
    chain_file(repo).mkdir()


def _chain_file_a_fifo(repo):
    chain_file(repo).unlink()
    os.mkfifo(chain_file(repo))


BAD_CHAINS = {
    "truncated-layer": _truncate_layer,
    "truncated-layer-trailer": _truncate_layer_trailer,
    "layer-checksum-not-its-name": _flip_layer_trailer,
    "wrong-base-count": _wrong_base_count,
    "layer-of-another-hash": _wrong_hash_version,
    "layer-bad-signature": _bad_layer_signature,
    "missing-layer-file": _missing_layer_file,
    "chain-names-an-absent-layer": _chain_names_an_absent_layer,
    "duplicate-layer": _duplicate_layer,
    "cycle": _cycle,
    "line-not-a-hash": _line_not_a_hash,
    "line-too-short": _line_too_short,
    "no-final-newline": _no_final_newline,
    "huge-chain-file": _huge_chain_file,
    "chain-file-a-directory": _chain_file_a_directory,
    "chain-file-a-fifo": _chain_file_a_fifo,
}


@pytest.mark.parametrize("case", sorted(BAD_CHAINS))
def test_damaged_chain_means_plain_pack_scanning(repo, answers, case, caplog):
    BAD_CHAINS[case](repo)
    start = time.monotonic()
    with odb.open(repo) as store:
        assert time.monotonic() - start < 2  # no hang on a FIFO, no reading a huge file whole
        assert scanning(store)
        check_against_answers(store, answers)
    assert warned(caplog, "multi-pack-index chain")


def test_huge_chain_file_is_read_with_a_byte_limit(repo, monkeypatch):
    _huge_chain_file(repo)
    asked = []
    real = midx_chain.read_all

    def read_all(fd, size):
        data = real(fd, size)
        asked.append((size, len(data)))
        return data

    monkeypatch.setattr(midx_chain, "read_all", read_all)
    with odb.open(repo) as store:
        assert scanning(store)
    assert chain_file(repo).stat().st_size > 50 * MAX_CHAIN_BYTES
    # Each look at the chain reads MAX_CHAIN_BYTES + 1 bytes (enough to see it is too big), no more.
    assert asked and all(size == got == MAX_CHAIN_BYTES + 1 for size, got in asked)


def test_layer_may_count_its_bases(repo, answers, caplog):
    """A layer whose header byte 7 counts the layers below it (the format's 'number of base
    multi-pack-index files'; git writes 0 today) is accepted."""
    def edit(m):
        m.base_count = 2

    rewrite_layer(repo, 2, edit)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        check_against_answers(store, answers)
    assert not warned(caplog, "multi-pack-index")


def test_empty_chain_file_is_no_chain(repo, answers, caplog):
    """As in git, an empty chain file is treated as a missing one: no warning."""
    damage.replace(chain_file(repo), b"")
    with odb.open(repo) as store:
        assert scanning(store)
        check_against_answers(store, answers)
    assert not warned(caplog, "multi-pack-index")


def test_uppercase_layer_names_are_read(repo, answers):
    """git parses the chain's hashes in either case and names the files in lower case."""
    write_chain(repo, [n.upper() for n in chain_names(repo)])
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
        check_against_answers(store, answers)


def test_sha256_chain_layer_damage(format_copy, caplog):
    repo = format_copy("midx-chain-sha256")
    answers = Answers.load("midx-chain-sha256")
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 3
    _wrong_base_count(repo)
    with odb.open(repo) as store:
        assert scanning(store)
        check_against_answers(store, answers)
    assert warned(caplog, "base count")


def test_layer_header_base_count_byte_is_what_git_writes(repo):
    """The fixture's layers carry 0 in header byte 7, as git writes it (the chain test above
    relies on odb accepting that)."""
    for name in chain_names(repo):
        data = layer_path(repo, name).read_bytes()
        assert struct.unpack_from(">4sBBBB", data)[4] == 0
