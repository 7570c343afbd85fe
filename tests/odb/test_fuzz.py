"""Fuzzing the readers: hypothesis mutates idx, midx, pack, loose and delta bytes of real repositories.

Whatever the damage, only odb.OdbError subclasses may escape, nothing hangs, and any object that
reads successfully is byte-exact with what git read from the undamaged repository. Examples per
target: GITFS_FUZZ_EXAMPLES (default 20); scripts/fuzz runs these for minutes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from array import array
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import damage
from limits import time_limit
from engine_check import read_engine  # noqa: F401 - autouse: every test here runs on both read paths
import odb
from odb.pack import sizes
from odb.objects import delta_chain
from odb.pack.packfile import Pack
from size_check import available, check_sizes, using

EXAMPLES = int(os.environ.get("GITFS_FUZZ_EXAMPLES", "20"))
SECONDS_PER_EXAMPLE = 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis directory in the working tree
    derandomize=os.environ.get("GITFS_FUZZ_RANDOM") != "1",  # CI runs the same examples each time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)


# ---- mutations ------------------------------------------------------------------------------------


@st.composite
def mutations(draw, size: int):
    """A list of edits to a file of `size` bytes, biased towards headers and tables at the start."""
    last = max(size - 1, 0)
    where = st.one_of(st.integers(0, min(last, 64)), st.integers(0, min(last, 2048)), st.integers(0, last),
                      st.integers(max(0, size - 64), last))
    edit = st.one_of(
        st.tuples(st.just("flip"), where, st.integers(1, 255)),
        st.tuples(st.just("set"), where, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("truncate"), st.integers(0, last)),
        st.tuples(st.just("insert"), where, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), where, st.integers(1, 64)),
        st.tuples(st.just("u32"), where, st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]) |
                  st.integers(0, 0xFFFFFFFF)),
    )
    return draw(st.lists(edit, min_size=1, max_size=4))


def mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for e in edits:
        op = e[0]
        if not b and op != "insert":
            continue
        if op == "flip":
            b[e[1] % len(b)] ^= e[2]
        elif op == "set":
            at = e[1] % len(b)
            b[at:at + len(e[2])] = e[2]
        elif op == "truncate":
            del b[e[1]:]
        elif op == "insert":
            at = e[1] % (len(b) + 1)
            b[at:at] = e[2]
        elif op == "delete":
            at = e[1] % len(b)
            del b[at:at + e[2]]
        elif op == "u32":
            at = e[1] % len(b)
            b[at:at + 4] = e[2].to_bytes(4, "big")
    return bytes(b)


# ---- the repositories under test ------------------------------------------------------------------


@dataclass
class Target:
    """One file of a private repository copy that examples mutate and then restore."""

    repo: Path
    path: Path
    original: bytes
    truth: dict


def _truth(git) -> dict:
    return {oid: (kind, data) for oid, kind, data in git.contents(git.ids())}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, fixture_repo):
    """Private copies of the midx and idx-v1 fixtures, with git's reading of every object."""
    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    for name in ("midx", "idx-v1"):
        src = fixture_repo(name)
        shutil.copytree(src.path, root / name, symlinks=True)
        out[name] = (root / name, _truth(src.git), src)
    return out


def _target(workdir, repo_name: str, pick) -> Target:
    repo, truth, src = workdir[repo_name]
    objects = repo / ".git" / "objects" if (repo / ".git").is_dir() else repo / "objects"
    path = pick(objects, src)
    return Target(repo, path, path.read_bytes(), truth)


def _midx(objects, src):
    return damage.midx_path(objects)


def _named(objects):
    names = {n.decode() for n in damage.Midx.read(damage.midx_path(objects)).pack_names()}
    return sorted(p for p in (objects / "pack").glob("*.idx") if p.name in names)


def _outside(objects):
    names = {n.decode() for n in damage.Midx.read(damage.midx_path(objects)).pack_names()}
    return sorted(p for p in (objects / "pack").glob("*.idx") if p.name not in names)


def _largest_loose(objects, src):
    return max((damage.loose_path(objects, o) for o in src.git.loose_ids()), key=lambda p: p.stat().st_size)


TARGETS = {
    "midx": ("midx", _midx),
    "idx-under-midx": ("midx", lambda o, s: _named(o)[0]),
    "idx-outside-midx": ("midx", lambda o, s: _outside(o)[0]),
    "pack-under-midx": ("midx", lambda o, s: _named(o)[-1].with_suffix(".pack")),
    "pack-outside-midx": ("midx", lambda o, s: _outside(o)[0].with_suffix(".pack")),
    "loose": ("midx", _largest_loose),
    "idx-v1": ("idx-v1", lambda o, s: sorted((o / "pack").glob("*.idx"))[0]),
    "pack-of-idx-v1": ("idx-v1", lambda o, s: sorted((o / "pack").glob("*.pack"))[0]),
}


def _read(store, oid):
    try:
        return store.read(oid)
    except odb.OdbError:
        return None


def check_store(repo: Path, truth: dict, *, exact: bool) -> None:
    """The fuzz oracle: nothing but OdbError escapes, and what reads is git's bytes.

    With verify=True that holds for any damage. Without it, it holds when exact is set: damage
    that zlib's checksum or a format check can see. Damage that moves an index offset onto
    another intact entry, or shifts a whole pack under its index, serves that other entry:
    git trusts its indexes the same way, and verify (gitfs --verify) is the answer to it.
    """
    with time_limit(SECONDS_PER_EXAMPLE):
        with odb.open(repo) as store, odb.open(repo, verify=True) as verified:
            listed = set(store)
            unknown = sorted(listed - set(truth))[:50]
            # The bulk size path (C and Python) answers as read_size, whatever the damage.
            check_sizes(store, sorted(truth) + unknown)
            for oid, (kind, data) in truth.items():
                got = _read(store, oid)
                checked = _read(verified, oid)
                assert checked is None or checked == (kind, data), f"verify served wrong bytes for {oid}"
                try:
                    header = store.read_header(oid)
                except odb.OdbError:
                    header = None
                try:
                    with contextlib.closing(store.open_stream(oid)) as s:
                        streamed = s.read()
                except odb.OdbError:
                    streamed = None
                if exact:
                    assert got is None or got == (kind, data), f"wrong bytes served for {oid}"
                    assert streamed is None or streamed == data, f"wrong bytes streamed for {oid}"
                    # A lying header is tolerable only on an object that then refuses to read.
                    assert header is None or header == (kind, len(data)) or got is None, oid
            # Ids git does not know come from damaged id tables; with verify they never read.
            for oid in unknown:
                _read(store, oid)
                assert _read(verified, oid) is None, f"verify served bytes for unknown id {oid}"
            for oid in sorted(truth)[:: max(1, len(truth) // 20)]:
                try:
                    full = store.resolve_prefix(oid[:7])
                except odb.OdbError:
                    continue
                assert full in listed or full in truth


def _in_place(edits) -> bool:
    """Damage that keeps every byte where it was, as a disk error does (no insert or delete)."""
    return all(e[0] in ("flip", "set", "u32", "truncate") for e in edits)


def _fuzz_file(target: Target, edits, *, index: bool) -> None:
    try:
        damage.replace(target.path, mutate(target.original, edits))
        check_store(target.repo, target.truth, exact=not index and _in_place(edits))
    finally:
        damage.replace(target.path, target.original)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_file(workdir, name):
    repo_name, pick = TARGETS[name]
    target = _target(workdir, repo_name, pick)
    check_store(target.repo, target.truth, exact=True)  # the undamaged copy passes
    index = "idx" in target.path.name or "multi-pack-index" in target.path.name

    @FUZZ
    @given(edits=mutations(len(target.original)))
    def run(edits):
        _fuzz_file(target, edits, index=index)

    run()


# ---- entry headers: the C size loop against the Python one on mutated packs -----------------------


def _entry_sizes(pack, offsets: list[int]) -> list[int]:
    located = sizes.Located([pack], array("q", [0]) * len(offsets), array("q", offsets))
    return list(sizes.entry_sizes(located, pack.format.raw_len))


@pytest.mark.skipif(sizes.compiled is None, reason="odb._sizes is not built: no C loop to compare")
@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta"])
def test_fuzz_entry_sizes(fixture_repo, name):
    """Mutated pack bytes under an unchanged index, read at every entry offset and at offsets
    hypothesis picks: odb/_sizes.c answers exactly where delta_chain.packed_size does, with the
    same size. (The pack is loaded as is: its check against the index would refuse most edits.)"""
    (path,) = (fixture_repo(name).objects_dir / "pack").glob("*.pack")
    original = path.read_bytes()
    index = Pack(str(path), odb.oid.SHA1).index
    starts = [index.offset_at(i) for i in range(index.count)]

    @FUZZ
    @given(edits=mutations(len(original)), more=st.lists(st.integers(-2, len(original) + 2), max_size=40))
    def run(edits, more):
        data = mutate(original, edits)
        pack = Pack(str(path), odb.oid.SHA1)
        pack._small, pack._data_end, pack.checked = data, max(0, len(data) - 20), True
        offsets = starts + more + [o + d for o in starts[::7] for d in (1, 2, 5)]
        answers = {}
        for implementation in available():
            with using(implementation), time_limit(SECONDS_PER_EXAMPLE):
                answers[implementation] = _entry_sizes(pack, offsets)
        assert answers["c"] == answers["python"]

    run()


# ---- whole reads: the compiled engine against the Python chain walk on mutated packs -------------


def _reads(pack, offsets: list[int], engine) -> list:
    """What reading each entry gives through one ChainReader (a shared base cache, as a store's):
    (kind, bytes), or ("damaged", offset) for a CorruptObject."""
    def find(raw):
        offset = pack.index.find_offset(raw)
        return None if offset is None else delta_chain.Location(None, pack, offset, raw)

    reader = delta_chain.ChainReader(find, 1 << 16, engine, pure=engine is None)
    out = []
    for offset in offsets:
        try:
            out.append(reader.read(delta_chain.Location(None, pack, offset, b"")))
        except odb.CorruptObject as e:
            out.append(("damaged", e.offset))
    return out


@pytest.mark.skipif(delta_chain.compiled is None, reason="odb._engine is not built: no C read to compare")
@pytest.mark.parametrize("name", ["ofs-delta", "ref-delta", "deep-delta", "midx"])
def test_fuzz_engine_reads(fixture_repo, name, read_engine):
    """Mutated pack bytes under an unchanged index, read at every entry offset and at offsets
    hypothesis picks: odb/_engine.c gives exactly the bytes the Python walk gives, or fails where it
    fails, at the same entry. (zlib and libdeflate word their errors differently: not compared.)"""
    if read_engine != "c":
        pytest.skip("compares both read paths in one run")
    path = max((fixture_repo(name).objects_dir / "pack").glob("*.pack"), key=lambda p: p.stat().st_size)
    original = path.read_bytes()
    index = Pack(str(path), odb.oid.SHA1).index
    starts = sorted(index.offset_at(i) for i in range(index.count))[:400]

    @FUZZ
    @given(edits=mutations(len(original)), more=st.lists(st.integers(-2, len(original) + 2), max_size=20))
    def run(edits, more):
        data = mutate(original, edits)
        offsets = starts + more
        answers = []
        for engine in (delta_chain.compiled, None):
            pack = Pack(str(path), odb.oid.SHA1)
            pack._small, pack._data_end, pack.checked = data, max(0, len(data) - 20), True
            with time_limit(SECONDS_PER_EXAMPLE):
                answers.append(_reads(pack, offsets, engine))
        assert answers[0] == answers[1]

    run()


# ---- delta bytes, recompressed so that zlib's checksum cannot catch the damage --------------------


BASE = b"".join(b"line %d of the base text, with some words to copy\n" % k for k in range(60))


@st.composite
def delta_cases(draw):
    """(target bytes, a valid delta from BASE to it)."""
    copies = draw(st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(1, 300)), max_size=6))
    copies = [(off, min(size, len(BASE) - off)) for off, size in copies]
    tail = draw(st.binary(max_size=200))
    target = b"".join(BASE[o:o + s] for o, s in copies) + tail
    return target, damage.copy_delta(len(BASE), len(target), copies, tail)


@FUZZ
@given(case=delta_cases(), ref=st.booleans(), edits=st.data())
def test_fuzz_delta_bytes(tmp_path_factory, case, ref, edits):
    target, delta = case
    mutated = mutate(delta, edits.draw(mutations(len(delta))))
    objects = tmp_path_factory.mktemp("delta") / "objects"
    (objects / "info").mkdir(parents=True)
    p = damage.PackBuilder()
    base_off, base_id = p.whole("blob", BASE)
    oid = damage.hash_object("blob", target)
    if ref:
        p.ref_delta(base_id, mutated, oid)
    else:
        p.ofs_delta(base_off, mutated, oid)
    p.write(objects / "pack")
    with time_limit(SECONDS_PER_EXAMPLE):
        with odb.open(objects) as store, odb.open(objects, verify=True) as verified:
            check_sizes(store, [oid, base_id])
            assert store.read(base_id.hex()) == ("blob", BASE)
            # Without verify a delta that decodes to other bytes is served as git serves it;
            # what must hold is that nothing but OdbError escapes.
            with contextlib.suppress(odb.OdbError):
                assert store.read(oid.hex())[0] == "blob"
            with contextlib.suppress(odb.OdbError):
                store.read_header(oid.hex())
            # With verify, other bytes are never served under this id.
            try:
                got = verified.read(oid.hex())
            except odb.OdbError:
                got = None
            assert got is None or got == ("blob", target)
            if mutated == delta:
                assert got == ("blob", target)
    shutil.rmtree(objects.parent)
