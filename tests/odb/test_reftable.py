"""odb.refs.reftable against the committed reftable repository and what the newest git said about it.

fixtures/refs/reftable/ was written by scripts/make_ref_fixtures.py with the newest git (Debian's
git 2.39 cannot read reftable); fixtures/refs/reftable.json holds that git's answers.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given

from limits import time_limit
import odb
from odb import revision
from odb.refs import RefStore
from odb.refs.reftable import DELETION, SYMREF, VAL2, Reftable, ReftableStack
from odb.objects.tree import Tree

ROOT = Path(__file__).resolve().parents[2]


def _fuzz_helpers():
    """The mutation strategies of test_fuzz.py (a sibling test module: under pytest's importlib
    mode it is not importable by name)."""
    spec = importlib.util.spec_from_file_location("odb_test_fuzz", Path(__file__).with_name("test_fuzz.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_fuzz = _fuzz_helpers()
FUZZ, SECONDS_PER_EXAMPLE, mutate, mutations = _fuzz.FUZZ, _fuzz.SECONDS_PER_EXAMPLE, _fuzz.mutate, _fuzz.mutations
REPO = ROOT / "fixtures" / "refs" / "reftable"
ANSWERS = json.loads((ROOT / "fixtures" / "refs" / "reftable.json").read_text())
FORMAT = "{oid} {name} {target}"


def listing(store: RefStore, *, root_refs: bool) -> list[str]:
    return [FORMAT.format(oid=r.oid.hex(), name=r.name, target=r.target or "")
            for r in store.list(root_refs=root_refs) if r.oid]


def gits(lines: list[str]) -> list[str]:
    """for-each-ref lines without %(objecttype), which a ref store cannot know."""
    out = []
    for line in lines:
        oid, _kind, name, target = line.split(" ")
        out.append(FORMAT.format(oid=oid, name=name, target=target))
    return out


@pytest.fixture(scope="module")
def store():
    return RefStore(REPO, None, odb.SHA1)


@pytest.fixture
def copy(tmp_path):
    dest = tmp_path / "reftable"
    shutil.copytree(REPO, dest)
    return dest


def base_table(repo: Path) -> Path:
    return repo / "reftable" / (repo / "reftable" / "tables.list").read_text().split()[0]


# ---- what the newest git answered -----------------------------------------------------------------


def test_the_fixture_is_reftable_with_a_stack(store):
    assert store.storage == "reftable"
    tables = store.backend.main.tables()
    assert len(tables) == ANSWERS["tables"] >= 2
    assert tables[0].ref_index, "the base table should have a ref index (several ref blocks)"
    kinds = {r.value_type for t in tables for r in t.records()}
    assert {DELETION, SYMREF, VAL2} <= kinds


def test_list_is_for_each_ref(store):
    assert listing(store, root_refs=False) == gits(ANSWERS["for_each_ref"])


def test_list_with_root_refs_is_for_each_ref_include_root_refs(store):
    assert listing(store, root_refs=True) == gits(ANSWERS["for_each_ref_root"])


def test_head_is_symbolic_ref_head(store):
    assert store.read("HEAD").target == ANSWERS["symbolic_ref_head"]
    assert store.head().oid.hex() == ANSWERS["rev_parse"]["HEAD"]


def test_deletions_hide_older_values(store):
    base = store.backend.main.tables()[0]
    assert base.find(b"refs/heads/doomed") is not None and base.find(b"refs/tags/bulk/008") is not None
    assert store.read("refs/heads/doomed") is None and store.read("refs/tags/bulk/008") is None
    assert ANSWERS["rev_parse"]["doomed"] is None and ANSWERS["rev_parse"]["bulk/008"] is None


def test_a_linked_worktree_stack(store):
    wt = RefStore(REPO / "worktrees" / "wt", REPO, odb.SHA1)
    assert listing(wt, root_refs=False) == gits(ANSWERS["worktree_for_each_ref"])
    assert wt.head().oid.hex() == ANSWERS["worktree_head"]
    assert store.read("worktrees/wt/HEAD").oid.hex() == ANSWERS["worktree_head"]


@pytest.mark.parametrize("rev", sorted(ANSWERS["rev_parse"]))
def test_rev_parse(store, rev):
    objects = odb.open(REPO)
    expected = ANSWERS["rev_parse"][rev]
    if rev.endswith("^{tree}"):
        got = revision.resolve(objects, store, rev[: -len("^{tree}")]).tree.hex()
    elif rev.endswith("^{}"):
        ref = store.resolve(revision.lookup(objects, store, rev[:-3]).ref)
        got = ref.peeled.hex()
    elif expected is None:
        with pytest.raises(odb.ObjectNotFound):
            revision.lookup(objects, store, rev)
        return
    else:
        got = revision.lookup(objects, store, rev).oid.hex()
    assert got == expected


def test_ls_tree_of_head(store):
    objects = odb.open(REPO)
    root = revision.resolve(objects, store, "HEAD").tree
    lines, stack = [], [(b"", root)]
    while stack:
        prefix, oid = stack.pop()
        for entry in Tree(objects.read(oid)[1], objects.format, oid).entries():
            if entry.mode == 0o040000:
                stack.append((prefix + entry.name + b"/", entry.oid))
            else:
                lines.append(f"{entry.mode:06o} blob {entry.oid.hex()}\t{(prefix + entry.name).decode()}")
    assert sorted(lines) == sorted(ANSWERS["ls_tree_head"])


def test_find_agrees_with_a_scan_of_every_table(store):
    for table in store.backend.main.tables():
        records = list(table.records())
        for record in records:
            assert table.find(record.name) == record
        for absent in (b"", b"A", b"refs/heads/mai", b"refs/heads/main0", b"refs/tags/bulk/0075", b"zz"):
            assert table.find(absent) is None


def test_tables_are_kept_while_their_files_are(store):
    first = store.backend.main.tables()
    assert [a is b for a, b in zip(first, store.backend.main.tables())] == [True] * len(first)


# ---- damage -------------------------------------------------------------------------------------


def rewrite_footer_crc(data: bytearray, version: int = 1) -> None:
    footer = {1: 68, 2: 72}[version]
    data[-4:] = struct.pack(">I", zlib.crc32(bytes(data[-footer:-4])))


@pytest.mark.parametrize("damage,message", [
    (lambda d: d.__setitem__(slice(0, 4), b"XXXX"), "REFT"),
    (lambda d: d.__setitem__(-10, d[-10] ^ 1), "CRC"),
    (lambda d: d.__setitem__(4, 3), "version"),
    (lambda d: d.__delitem__(slice(-30, None)), "footer does not repeat the header"),
    (lambda d: d.__delitem__(slice(200, 400)), "reftable"),  # the footer is intact: the blocks tell
])
def test_a_damaged_table_is_refused(copy, damage, message):
    path = base_table(copy)
    data = bytearray(path.read_bytes())
    damage(data)
    path.write_bytes(bytes(data))
    with pytest.raises(odb.CorruptObject, match=message), time_limit(5):
        RefStore(copy, None, odb.SHA1).list()


def test_a_table_of_another_hash_is_refused(copy):
    with pytest.raises(odb.CorruptObject, match="sha1 ids in a sha256"):
        Reftable(str(base_table(copy)), odb.SHA256)


@pytest.mark.parametrize("where,value,message", [
    ("block_len", 0xFFFFFF, "block length"),
    ("block_len", 5, "block length"),
    ("restart_count", 0xFFFF, "restart count"),
    ("first_record", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "varint"),
    ("first_record", b"\x05", "runs past|out of order"),
    ("ref_index", 1 << 40, "past the blocks"),
    ("block_type", b"z", "block type"),
])
def test_lengths_and_offsets_are_checked(copy, where, value, message):
    """Damage with the footer's CRC recomputed, as a hostile writer would leave it."""
    path = base_table(copy)
    data = bytearray(path.read_bytes())
    header = 24
    if where == "block_len":
        data[header + 1 : header + 4] = value.to_bytes(3, "big")
    elif where == "restart_count":
        block_len = int.from_bytes(data[header + 1 : header + 4], "big")
        data[block_len - 2 : block_len] = value.to_bytes(2, "big")
    elif where == "first_record":
        data[header + 4 : header + 4 + len(value)] = value
    elif where == "block_type":
        data[512] = value[0]  # the second block (the first one's type decides if there are refs)
    elif where == "ref_index":
        data[-68 + header : -68 + header + 8] = value.to_bytes(8, "big")
        rewrite_footer_crc(data)
    path.write_bytes(bytes(data))
    with pytest.raises(odb.CorruptObject, match=message), time_limit(5):
        table = Reftable(str(path), odb.SHA1)
        list(table.records())
        table.find(b"refs/tags/bulk/030")


def put_varint(value: int) -> bytes:
    """reftable/record.c put_var_int."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        value -= 1
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def test_an_index_that_points_at_itself_is_refused(copy):
    path = base_table(copy)
    table = Reftable(str(path), odb.SHA1)
    data = bytearray(path.read_bytes())
    block = table._block(table.ref_index, ord("i"))
    # Find an index record whose block position takes as many varint bytes as the index's
    # own position, and point it at the index: a loop of index levels.
    pos, key, loop = block.start, b"", put_varint(table.ref_index)
    while pos < block.restarts:
        key, _, pos = table._key(block, pos, key)
        position, end = odb.refs.reftable.varint(table.buf, pos, block.restarts, path)
        if len(put_varint(position)) == len(loop):
            data[pos:end] = loop
            break
        pos = end
    else:
        pytest.fail("no index record to rewrite")
    path.write_bytes(bytes(data))
    with pytest.raises(odb.CorruptObject, match="deeper than"), time_limit(5):
        Reftable(str(path), odb.SHA1).find(key)


@pytest.mark.parametrize("listing_text,message", [
    ("../../packed-refs\n", "not a file in reftable"),
    ("no-such-table.ref\n", "does not exist"),
    ("unterminated", "unterminated"),
])
def test_a_bad_tables_list(copy, listing_text, message):
    (copy / "reftable" / "tables.list").write_text(listing_text)
    with pytest.raises(odb.CorruptObject, match=message):
        RefStore(copy, None, odb.SHA1).list()


def test_a_missing_tables_list_is_an_empty_stack(copy):
    (copy / "reftable" / "tables.list").unlink()
    assert ReftableStack(str(copy / "reftable"), odb.SHA1).records() == []


def test_a_table_replaced_by_compaction_is_found_again(copy, monkeypatch):
    stack = ReftableStack(str(copy / "reftable"), odb.SHA1)
    names = (copy / "reftable" / "tables.list").read_text().split()
    real = stack._names
    calls = []

    def names_then_compacted():
        calls.append(1)
        if len(calls) == 1:
            return names + ["gone-since.ref"]  # listed, then removed before we open it
        return real()

    monkeypatch.setattr(stack, "_names", names_then_compacted)
    assert len(stack.tables()) == len(names) and len(calls) == 2


def test_a_fifo_in_place_of_a_table_never_blocks(copy):
    import os

    path = base_table(copy)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(odb.CorruptObject), time_limit(5):
        RefStore(copy, None, odb.SHA1).list()


@pytest.mark.parametrize("table", [0, -1])
def test_fuzz_a_table(tmp_path_factory, table):
    repo = tmp_path_factory.mktemp("reftable-fuzz") / "reftable"
    shutil.copytree(REPO, repo)
    path = repo / "reftable" / (repo / "reftable" / "tables.list").read_text().split()[table]
    original = path.read_bytes()

    @FUZZ
    @given(edits=mutations(len(original)))
    def run(edits):
        path.write_bytes(mutate(original, edits))
        with time_limit(SECONDS_PER_EXAMPLE):
            store = RefStore(repo, None, odb.SHA1)
            # Nothing but OdbError escapes; reftable has no checksum over its blocks, so a
            # flipped id byte reads as another id (git reads it the same way).
            for call in (store.list, store.head, lambda: store.resolve("refs/tags/bulk/030"),
                         lambda: [t.find(b"refs/heads/main") for t in store.backend.main.tables()]):
                try:
                    call()
                except odb.OdbError:
                    pass

    run()


def test_list_of_one_directory(store):
    for prefix in ("refs/tags/", "refs/tags/bulk/", "refs/heads/", "refs/none/"):
        expected = [line for line in gits(ANSWERS["for_each_ref"]) if line.split(" ")[1].startswith(prefix)]
        assert [FORMAT.format(oid=r.oid.hex(), name=r.name, target=r.target or "")
                for r in store.list(prefix) if r.oid] == expected


def test_worktree_refs_shadow_common_ones_and_hide_the_main_worktrees(monkeypatch):
    """refs/iterator.c ref_iterator_select, with stacks made up for the case git never writes
    (a shared name in a worktree's own stack)."""
    from odb.refs.reftable import VAL1, RefRecord

    def stack(*names_and_ids):
        records = [RefRecord(n.encode(), VAL1, bytes([i]) * 20, None, None, 1) for n, i in names_and_ids]

        class Fake:
            dir = "fake"

            def records(self):
                return records
        return Fake()

    wt = RefStore(REPO / "worktrees" / "wt", REPO, odb.SHA1)
    wt.backend.worktree = stack(("HEAD", 1), ("refs/bisect/x", 2), ("refs/heads/main", 3))
    wt.backend.main = stack(("HEAD", 4), ("refs/bisect/y", 5), ("refs/heads/main", 6), ("refs/heads/other", 7))
    assert [(r.name, r.oid[0]) for r in wt.list()] == [
        ("HEAD", 1), ("refs/bisect/x", 2), ("refs/heads/main", 3), ("refs/heads/other", 7)]
