"""The formats of current git, read by odb from repositories the newest git wrote (fixtures/formats/),
compared with what the newest git answered for them: midx v2, incremental midx chains, .rev files,
the midx RIDX chunk, cruft packs with .mtimes, .keep and .promisor packs, bitmaps, on SHA-1 and
SHA-256."""

from __future__ import annotations

import logging

import pytest

import damage
import odb
from format_fixtures import (  # noqa: F401 - format_copy is a pytest fixture
    FORMAT_NAMES,
    Answers,
    chain_names,
    check_against_answers,
    format_copy,
    layer_path,
    repo_path,
    stored_once,
)
from odb.pack.multi_pack_index import MultiPackIndex


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_odb_answers_as_the_newest_git(name, caplog):
    """Object by object, odb agrees with what the newest git said, with no warning: nothing in
    these repositories is damage, whatever git 2.39 thinks of them."""
    repo = repo_path(name)
    with odb.open(repo) as store:
        check_against_answers(store, Answers.load(name), single_copy=stored_once(repo))
    assert warnings(caplog) == []


def test_all_the_formats_are_here():
    """The list the other tests take their cases from: a missing fixture directory must fail."""
    assert set(FORMAT_NAMES) >= {"midx-v2", "midx-chain", "midx-chain-compacted", "midx-chain-sha256", "rev",
                                 "rev-sha256", "midx-ridx", "cruft", "keep-promisor", "bitmap"}


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_every_pack_and_the_loose_objects_serve(name):
    """Each pack of the repository (cruft, kept, promisor, bitmapped, under a chain or not)
    answers for the objects only it holds, and loose objects answer where there are any. (In
    keep-promisor, index-pack --promisor copied the kept pack's objects into a promisor pack:
    either copy may answer for those.)"""
    repo = repo_path(name)
    with odb.open(repo) as store:
        raw_len = store.format.raw_len
        seen = {store.locate(oid).source for oid in Answers.load(name).objects}
    once = stored_once(repo)
    idx_files = list((repo / "objects" / "pack").glob("*.idx"))
    packs = {idx.with_suffix(".pack").name for idx in idx_files}
    needed = {idx.with_suffix(".pack").name for idx in idx_files if once & set(damage.pack_entries(idx, raw_len))}
    has_loose = any((repo / "objects").glob("[0-9a-f][0-9a-f]/*"))
    assert needed <= seen - {"loose"} <= packs
    assert ("loose" in seen) == has_loose
    assert needed


def test_midx_v2_with_pack_names_out_of_order_is_used():
    repo = repo_path("midx-v2")
    path = repo / "objects" / "pack" / "multi-pack-index"
    midx = MultiPackIndex(path, odb.SHA1)
    assert midx.version == 2 and midx.pack_names != sorted(midx.pack_names)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 1 and not damage.midx_chained(store)
        # Every object the midx lists is served from the pack its entry names, in PNAM's order.
        for i in range(midx.count):
            pack_id, offset = midx.entry_at(i)
            info = store.locate(midx.ids.id_at(i).hex())
            assert (info.source, info.offset) == (midx.pack_names[pack_id][:-4] + ".pack", offset)


@pytest.mark.parametrize("name,fmt", [("midx-chain", odb.SHA1), ("midx-chain-sha256", odb.SHA256),
                                      ("midx-chain-compacted", odb.SHA1)])
def test_a_chain_is_read_through_every_layer(name, fmt):
    repo = repo_path(name)
    names = chain_names(repo)
    layers = [MultiPackIndex(layer_path(repo, n), fmt) for n in names]
    with odb.open(repo) as store:
        assert store.format is fmt
        assert damage.midx_chained(store) and damage.midx_layers(store) == len(names) == 3
        for layer in layers:
            for i in range(layer.count):
                pack_id, offset = layer.entry_at(i)
                info = store.locate(layer.ids.id_at(i).hex())
                assert (info.source, info.offset) == (layer.pack_names[pack_id][:-4] + ".pack", offset)


def test_the_compacted_layer_keeps_its_layers_pack_order():
    """git's `multi-pack-index compact` writes a v2 layer whose PNAM is not sorted; the chain fixture
    must really hold one, or the test above proves nothing about it."""
    repo = repo_path("midx-chain-compacted")
    middle = MultiPackIndex(layer_path(repo, chain_names(repo)[1]), odb.SHA1, layer=1)
    assert middle.version == 2 and middle.pack_names != sorted(middle.pack_names)


def test_midx_ridx_fixture_has_its_chunks():
    midx = MultiPackIndex(repo_path("midx-ridx") / "objects" / "pack" / "multi-pack-index", odb.SHA1)
    assert midx.version == 2 and midx.has_reverse_index


def test_cruft_keep_promisor_and_bitmap_files_are_there():
    """The side files git writes beside these packs exist in the fixtures (and are not packs)."""
    def suffixes(name):
        return {p.suffix for p in (repo_path(name) / "objects" / "pack").iterdir()}

    assert ".mtimes" in suffixes("cruft")
    assert {".keep", ".promisor"} <= suffixes("keep-promisor")
    assert ".bitmap" in suffixes("bitmap") and ".bitmap" in suffixes("midx-ridx")
    assert all(".rev" in suffixes(n) for n in FORMAT_NAMES)


def test_midx_v2_naming_a_pack_twice_is_ignored(format_copy, caplog):
    """Version 2 lets PNAM be in any order, so the v1 order check no longer catches a repeated
    name: it is refused on its own, and the packs' own indexes serve every object."""
    repo = format_copy("midx-v2")
    path = repo / "objects" / "pack" / "multi-pack-index"
    m = damage.Midx.read(path)
    names = m.pack_names()
    m.set_chunk(b"PNAM", damage.encode_pnam([names[0], names[0]]))
    m.write(path)
    with odb.open(repo) as store:
        assert damage.midx_layers(store) == 0
        check_against_answers(store, Answers.load("midx-v2"))
    assert any("named twice" in w for w in warnings(caplog))
