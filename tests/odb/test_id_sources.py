"""Id sources as peers (odb/pack/id_sources.py): a pack's .idx, a multi-pack-index and a chain answer the
same questions, the backend asks them in turn (packs most recently found first, as git's MRU),
and which packs are broken is the snapshot's state."""

from __future__ import annotations

import logging

import pytest

import damage
import odb
from format_fixtures import Answers, format_copy, repo_path  # noqa: F401 - format_copy is a fixture
from odb.pack.id_sources import ChainSource, MidxSource, PackSource


def holders(repo, raw_len: int) -> dict[str, set[str]]:
    """id -> the .pack files holding a copy of it, from their .idx files."""
    out: dict[str, set[str]] = {}
    for idx in (repo / "objects" / "pack").glob("*.idx"):
        for oid in damage.pack_entries(idx, raw_len):
            out.setdefault(oid, set()).add(idx.with_suffix(".pack").name)
    return out


@pytest.mark.parametrize("name,kinds", [("keep-promisor", {PackSource}), ("midx-v2", {MidxSource, PackSource}),
                                        ("midx-chain", {ChainSource, PackSource}),
                                        ("midx-chain-sha256", {ChainSource, PackSource})])
def test_each_source_answers_the_same_questions(name, kinds):
    """Per source: find and pack_of name a pack that holds the id, prefixes and buckets list
    only ids it finds, and its nonempty buckets are those its buckets list."""
    repo = repo_path(name)
    with odb.open(repo) as store:
        backend = store._dirs[0].packs
        sources = backend.sources
        assert {type(s) for s in sources} == kinds
        where = holders(repo, store.format.raw_len)
        h = store.format.raw_len
        for source in sources:
            listed = set()
            for b in range(256):
                block = source.bucket_block(b)
                ids = [block[k:k + h] for k in range(0, len(block), h)]
                assert all(raw[0] == b for raw in ids)
                listed.update(ids)
            assert source.nonempty_buckets() == {raw[0] for raw in listed}
            assert listed, type(source)
            for raw in listed:
                pack, _ = source.find(raw)
                assert pack.name in where[raw.hex()]
                prefix = odb.oid.Prefix.from_hex(raw.hex()[:7])
                assert raw in source.prefix_matches(prefix, 10)
        # Together they list every packed object once per source that holds it.
        assert set().union(*[set(source_ids(s, h)) for s in sources]) == {bytes.fromhex(o) for o in where}


def source_ids(source, h):
    for b in range(256):
        block = source.bucket_block(b)
        yield from (block[k:k + h] for k in range(0, len(block), h))


def test_unindexed_packs_are_asked_most_recently_found_first(format_copy):
    """git keeps its packs in most-recently-used order; a lookup that lands in a pack moves it
    to the front of the packs, never before the multi-pack-index."""
    repo = format_copy("midx-chain")
    (outside,) = [s.pack.name for s in odb.open(repo)._dirs[0].packs.sources if isinstance(s, PackSource)]
    repo_ids = holders(repo, 20)
    with odb.open(repo) as store:
        backend = store._dirs[0].packs
        ids = [o for o, packs in repo_ids.items() if packs == {outside}]
        assert backend.find(bytes.fromhex(ids[0]))[0].name == outside
        assert isinstance(backend.sources[0], ChainSource)
    repo = format_copy("keep-promisor")
    where = holders(repo, 20)
    with odb.open(repo) as store:
        backend = store._dirs[0].packs
        for pack_name in sorted({next(iter(p)) for p in where.values() if len(p) == 1}):
            oid = next(o for o, p in where.items() if p == {pack_name})
            assert backend.find(bytes.fromhex(oid))[0].name == pack_name
            assert backend.sources[0].pack.name == pack_name
        order = [s.pack.name for s in backend.sources]
        builder = damage.PackBuilder()
        builder.whole("blob", b"a new pack\n")
        new_pack, _ = builder.write(repo / "objects" / "pack")
        assert store.refresh()  # a new snapshot: the packs keep their order, the new one last
        assert [s.pack.name for s in backend.sources] == order + [new_pack.name]


def test_a_broken_pack_is_skipped_and_warned_once(format_copy, caplog):
    """A pack whose data disagrees with its .idx is left out, warned once per snapshot that keeps
    it, and checked again once git replaces it (a new file is a new pack)."""
    repo = format_copy("keep-promisor")
    where = holders(repo, 20)
    answers = Answers.load("keep-promisor")
    victim = next(p for p in (repo / "objects" / "pack").glob("*.pack")
                  if any(packs == {p.name} for packs in where.values()))
    gone = {o for o, packs in where.items() if packs == {victim.name}}
    original = victim.read_bytes()
    damage.flip(victim, -1)  # the trailer no longer matches the .idx
    with odb.open(repo) as store:
        assert set(store) == set(answers.objects) - gone
        for oid in gone:
            with pytest.raises(odb.ObjectNotFound):
                store.read(oid)
        damage.write_loose(repo / "objects", "ff" * 20, b"blob 0\0")  # a change elsewhere
        assert store.refresh()
        assert set(store) == (set(answers.objects) - gone) | {"ff" * 20}
        said = [r for r in caplog.records if r.levelno >= logging.WARNING and victim.name in r.getMessage()]
        assert len(said) == 1
        damage.replace(victim, original)
        assert store.refresh()
        assert set(store) >= set(answers.objects)
        assert all(store.read(oid)[0] == answers.objects[oid][0] for oid in gone)
