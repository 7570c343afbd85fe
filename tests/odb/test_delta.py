"""Tests of odb.objects.delta: both implementations against a test-side encoder, hostile deltas and real git deltas."""

from __future__ import annotations

import mmap
import os
import random
import struct
import subprocess
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damage import varint
from engine_check import engine_apply
from odb.objects import delta, delta_chain
from odb.objects.delta import DeltaError, apply_delta_python, read_sizes


IMPLEMENTATIONS = [pytest.param(apply_delta_python, id="python")]
# The engine's own delta loop (odb/_engine.c, inside a pack read) answers as apply_delta does.
if delta_chain.compiled is not None:
    IMPLEMENTATIONS.append(pytest.param(engine_apply, id="engine"))
else:
    IMPLEMENTATIONS.append(pytest.param(None, id="engine", marks=pytest.mark.skip(reason="odb._engine is not built")))
if delta.apply_delta_c is not None:
    IMPLEMENTATIONS.append(pytest.param(delta.apply_delta_c, id="c"))
else:
    # Visible in the -ra summary: the accelerator is optional, but its absence must show.
    IMPLEMENTATIONS.append(
        pytest.param(
            None,
            id="c",
            marks=pytest.mark.skip(reason="odb._delta is not built (no C compiler at install?)"),
        )
    )


# ---- a test-side encoder, written from the format description, independent of odb.objects.delta ----


def header(base_size: int, result_size: int) -> bytes:
    return varint(base_size) + varint(result_size)


def copy_op(offset: int, size: int, explicit_zeros: bool = False) -> bytes:
    """A copy instruction; size 0x10000 is encoded as no size bytes, as git does."""
    if size == 0x10000:
        size = 0
    op = 0x80
    args = bytearray()
    for k in range(4):
        byte = (offset >> (8 * k)) & 0xFF
        if byte or (explicit_zeros and k == 0):
            op |= 1 << k
            args.append(byte)
    for k in range(3):
        byte = (size >> (8 * k)) & 0xFF
        if byte or (explicit_zeros and k == 0 and size):
            op |= 0x10 << k
            args.append(byte)
    return bytes([op]) + bytes(args)


def insert_op(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 127):
        chunk = data[i : i + 127]
        out.append(len(chunk))
        out += chunk
    return bytes(out)


def reference_apply(base: bytes, data: bytes) -> bytes | None:
    """The format rules spelt out plainly and slowly: the result, or None for any error."""
    pos = 0
    sizes = []
    for _ in range(2):
        value = shift = 0
        while True:
            if pos >= len(data) or shift >= 63:
                return None
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        sizes.append(value)
    base_size, result_size = sizes
    if base_size != len(base):
        return None
    out = bytearray()
    while pos < len(data):
        op = data[pos]
        pos += 1
        if op & 0x80:
            fields = [0, 0]
            for bit in range(7):
                if op & (1 << bit):
                    if pos >= len(data):
                        return None
                    field, shift = (0, 8 * bit) if bit < 4 else (1, 8 * (bit - 4))
                    fields[field] |= data[pos] << shift
                    pos += 1
            offset, size = fields[0], fields[1] or 0x10000
            if offset + size > len(base) or len(out) + size > result_size:
                return None
            out += base[offset : offset + size]
        elif op:
            if pos + op > len(data) or len(out) + op > result_size:
                return None
            out += data[pos : pos + op]
            pos += op
        else:
            return None
    return bytes(out) if len(out) == result_size else None


# ---- hypothesis strategies ----


@st.composite
def deltas(draw, max_base=2000):
    """(base, delta, expected result) built from random copy and insert instructions."""
    base = draw(st.binary(max_size=max_base))
    parts = []
    expected = bytearray()
    for _ in range(draw(st.integers(0, 30))):
        if base and draw(st.booleans()):
            offset = draw(st.integers(0, len(base) - 1))
            size = draw(st.integers(1, len(base) - offset))
            parts.append(copy_op(offset, size, explicit_zeros=draw(st.booleans())))
            expected += base[offset : offset + size]
        else:
            data = draw(st.binary(min_size=1, max_size=300))
            parts.append(insert_op(data))
            expected += data
    return base, header(len(base), len(expected)) + b"".join(parts), bytes(expected)


def outcome(apply, base, data):
    """The result bytes, or None if the implementation raised DeltaError (and nothing else)."""
    try:
        result = apply(base, data)
    except DeltaError:
        return None
    assert isinstance(result, bytes)
    return result


def every_implementation():
    """Both implementations where the accelerator is built: their answers must agree."""
    return [apply_delta_python] + ([delta.apply_delta_c] if delta.apply_delta_c else [])


# ---- properties ----


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@given(case=deltas())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_instruction_streams_rebuild_the_expected_bytes(apply, case):
    base, data, expected = case
    assert apply(base, data) == expected
    assert reference_apply(base, data) == expected


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@given(case=deltas(max_base=300), data=st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_deltas_fail_cleanly_and_agree(apply, case, data):
    base, good, _ = case
    mutated = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if kind == "truncate":
            del mutated[data.draw(st.integers(0, len(mutated))) :]
        elif kind == "insert":
            mutated.insert(data.draw(st.integers(0, len(mutated))), data.draw(st.integers(0, 255)))
        elif mutated:
            i = data.draw(st.integers(0, len(mutated) - 1))
            if kind == "flip":
                mutated[i] ^= 1 << data.draw(st.integers(0, 7))
            else:
                del mutated[i]
    expected = reference_apply(base, bytes(mutated))
    assert outcome(apply, base, bytes(mutated)) == expected
    for other in every_implementation():
        assert outcome(other, base, bytes(mutated)) == expected


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@given(base=st.binary(max_size=64), data=st.binary(max_size=64))
@settings(max_examples=400, deadline=None)
def test_random_bytes_fail_cleanly_and_agree(apply, base, data):
    # Random bytes rarely get past the base size check; declare the right base size half the time.
    for candidate in (data, varint(len(base)) + data):
        assert outcome(apply, base, candidate) == reference_apply(base, candidate)


@given(case=deltas(max_base=200), cut=st.integers(0, 40))
@settings(deadline=None)
def test_read_sizes_on_a_prefix(case, cut):
    base, data, expected = case
    full = read_sizes(data)
    assert full[:2] == (len(base), len(expected))
    assert full[2] == len(header(len(base), len(expected)))
    if cut >= full[2]:
        assert read_sizes(data[:cut]) == full
    else:
        with pytest.raises(DeltaError, match="truncated"):
            read_sizes(data[:cut])


BIG_BASE = random.Random(5).randbytes(0x30000)


@st.composite
def big_copies(draw):
    """Deltas over a 192 KiB base: 3-byte offsets and 2-byte sizes, as in real packs."""
    parts = []
    expected = bytearray()
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.integers(0, 4)) == 0:
            data = draw(st.binary(min_size=1, max_size=200))
            parts.append(insert_op(data))
            expected += data
            continue
        offset = draw(st.integers(0, len(BIG_BASE) - 1))
        size = draw(st.one_of(st.integers(1, 0x300), st.integers(1, 0x20000), st.just(0x10000)))
        size = min(size, len(BIG_BASE) - offset)
        parts.append(copy_op(offset, size))
        expected += BIG_BASE[offset : offset + size]
    return header(len(BIG_BASE), len(expected)) + b"".join(parts), bytes(expected)


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@given(case=big_copies())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_copies_with_wide_offsets_and_sizes(apply, case):
    data, expected = case
    assert apply(BIG_BASE, data) == expected


# ---- specific cases ----


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_copy_size_zero_means_0x10000(apply):
    base = bytes(range(256)) * 512  # 128 KiB
    data = header(len(base), 0x10000 + 3) + bytes([0x80 | 0x01, 0x05]) + insert_op(b"xyz")
    assert apply(base, data) == base[5 : 5 + 0x10000] + b"xyz"


@pytest.fixture(scope="module")
def base_21m():
    return random.Random(7).randbytes(0x01400000)


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_every_copy_opcode(apply, base_21m):
    # Each of the 128 flag combinations, every field byte distinct and non-zero, so that a byte
    # read into the wrong place or skipped changes the result.
    field_bytes = [0x11, 0x22, 0x33, 0x01, 0x44, 0x55, 0x01]
    for op in range(0x80, 0x100):
        present = [bit for bit in range(7) if op & (1 << bit)]
        offset = sum(field_bytes[bit] << (8 * bit) for bit in present if bit < 4)
        size = sum(field_bytes[bit] << (8 * (bit - 4)) for bit in present if bit >= 4) or 0x10000
        expected = base_21m[offset : offset + size] + b"!"
        data = (
            header(len(base_21m), len(expected))
            + bytes([op] + [field_bytes[bit] for bit in present])
            + insert_op(b"!")
        )
        assert apply(base_21m, data) == expected, hex(op)
        # Flag bits set but every field byte zero: offset 0 and, as git reads it, size 0x10000.
        zeros = bytes([op]) + bytes(len(present)) + insert_op(b"!")
        expected = base_21m[:0x10000] + b"!"
        assert apply(base_21m, header(len(base_21m), len(expected)) + zeros) == expected, hex(op)


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_all_offset_and_size_bytes(apply):
    base = os.urandom(0x1234567 + 0x10203)
    data = header(len(base), 0x10203) + bytes([0xFF, 0x67, 0x45, 0x23, 0x01, 0x03, 0x02, 0x01])
    assert apply(base, data) == base[0x1234567 : 0x1234567 + 0x10203]


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "base, data, message",
    [
        (b"abc", header(3, 3) + copy_op(1, 3), "past the base end"),
        (b"abc", header(3, 1) + copy_op(3, 1), "past the base end"),
        (b"abc", header(3, 2) + copy_op(0, 3), "past its result size"),
        (b"abc", header(3, 2) + insert_op(b"xyz"), "past its result size"),
        (b"abc", header(3, 3) + b"\x00" + insert_op(b"xyz"), "opcode 0x00"),
        (b"abc", header(3, 3) + insert_op(b"ab") + b"\x00", "opcode 0x00"),
        (b"abc", header(4, 3) + copy_op(0, 3), "base of 4 bytes"),
        (b"abc", header(2, 2) + copy_op(0, 2), "base of 2 bytes"),
        (b"abc", header(3, 4) + copy_op(0, 3), "produced 3 bytes but declares 4"),
        (b"abc", header(3, 1), "produced 0 bytes but declares 1"),
        (b"abc", header(3, 3) + b"\x05ab", "truncated inside an insert"),
        (b"abc", header(3, 2) + b"\x03ab", "truncated inside an insert"),
        (b"abc", header(3, 3) + bytes([0x91, 0x00]), "truncated inside a copy"),
        (b"abc", header(3, 3) + bytes([0x90]), "truncated inside a copy"),
        (b"abc", b"", "truncated in its base size"),
        (b"abc", b"\x03", "truncated in its result size"),
        (b"abc", b"\x83", "truncated in its base size"),
        (b"abc", b"\x80" * 9 + b"\x03" + b"\x03", "base size is longer than 9 bytes"),
        (b"abc", b"\x03" + b"\xff" * 9 + b"\x01", "result size is longer than 9 bytes"),
    ],
)
def test_bad_delta(apply, base, data, message):
    with pytest.raises(DeltaError, match=message):
        apply(base, data)
    assert reference_apply(base, data) is None


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_empty_result_and_non_minimal_varints(apply):
    assert apply(b"", header(0, 0)) == b""
    # git reads varints without insisting on the shortest form; 0x83 0x00 is 3.
    assert apply(b"abc", b"\x83\x00\x02" + copy_op(1, 2)) == b"bc"
    assert read_sizes(b"\x83\x80\x00\x02") == (3, 2, 4)


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@pytest.mark.parametrize("claimed", [2**30, 2**40, 2**62])
def test_huge_declared_result_size_allocates_nothing_big(apply, claimed):
    base = b"x" * 1000
    data = header(len(base), claimed) + copy_op(0, 1000) * 3 + insert_op(b"tail")
    tracemalloc.start()
    try:
        with pytest.raises(DeltaError, match=f"produced 3004 bytes but declares {claimed}"):
            apply(base, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_copies_beyond_the_result_size_stop_early(apply):
    # 4096 copies of 64 KiB would be 256 MiB; the declared 1 MiB must stop them long before.
    base = bytes(0x10000)
    data = header(len(base), 1 << 20) + copy_op(0, 0x10000) * 4096
    tracemalloc.start()
    try:
        with pytest.raises(DeltaError, match="past its result size"):
            apply(base, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_large_delta_and_its_truncations(apply):
    # Several hundred KiB of instructions: the Python version works through it in windows.
    rng = random.Random(11)
    parts = []
    expected = bytearray()
    while sum(map(len, parts)) < 300_000:
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randint(1, 127))
            parts.append(insert_op(data))
            expected += data
        else:
            offset = rng.randrange(len(BIG_BASE))
            size = rng.randint(1, min(300, len(BIG_BASE) - offset))
            parts.append(copy_op(offset, size))
            expected += BIG_BASE[offset : offset + size]
    data = header(len(BIG_BASE), len(expected)) + b"".join(parts)
    assert apply(BIG_BASE, data) == expected
    for cut in [len(data) - 1, 1 << 16, (1 << 16) + 1, (1 << 17) - 3, 200_001]:
        with pytest.raises(DeltaError):
            apply(BIG_BASE, data[:cut])
        assert reference_apply(BIG_BASE, data[:cut]) is None


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_tiny_instructions_do_not_multiply_memory(apply):
    # 250,000 one-byte copies: a Python object per instruction held at once would take ~50 MB.
    count = 250_000
    data = header(1, count) + bytes([0x90, 0x01]) * count
    tracemalloc.start()
    try:
        result = apply(b"x", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == b"x" * count
    assert peak < 16 << 20


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_buffer_kinds(apply, tmp_path):
    base = bytes(range(256)) * 8
    data = header(len(base), 300) + copy_op(100, 200) + insert_op(b"z" * 100)
    expected = base[100:300] + b"z" * 100
    path = tmp_path / "base"
    path.write_bytes(b"junk" + base)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        try:
            assert apply(view[4:], memoryview(data)) == expected
        finally:
            view.release()
    assert apply(bytearray(base), bytearray(data)) == expected
    assert apply(memoryview(base), data) == expected


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@pytest.mark.parametrize("good", [True, False], ids=["result", "error"])
def test_an_mmap_base_can_close_afterwards(apply, good, tmp_path):
    # The pack reader closes its maps when a pack vanishes; nothing of a delta application,
    # not even an exception still held with its traceback, may keep the map exported.
    path = tmp_path / "base"
    path.write_bytes(bytes(range(256)) * 16)
    data = header(4096, 300 if good else 301) + copy_op(10, 150) * 2
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        kept = []
        try:
            kept.append(apply(m, data))
        except DeltaError as e:
            kept.append(e)
        assert isinstance(kept[0], bytes) == good
        m.close()


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
def test_threads_get_their_own_results(apply):
    # The C version drops the GIL for big deltas; concurrent calls must not mix their outputs.
    cases = []
    for seed in range(4):
        base = os.urandom(1 << 20)
        data = header(len(base), 3 << 19) + copy_op(seed * 1000, 1 << 19) * 3
        cases.append((base, data, base[seed * 1000 : seed * 1000 + (1 << 19)] * 3))
    failures = []

    def work(base, data, expected):
        for _ in range(20):
            if apply(base, data) != expected:
                failures.append(1)

    threads = [threading.Thread(target=work, args=case) for case in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def git(cwd, *args, **kw):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, **kw)


def make_deltified_repo(path: Path, offset_deltas: bool) -> Path:
    git(path.parent, "init", "-q", "--bare", str(path))
    work = path.parent / (path.name + "-work")
    git(path.parent, "init", "-q", str(work))
    lines = [f"line {i}: {'lorem ipsum ' * (i % 7)}\n" for i in range(400)]
    for version in range(12):
        lines[version * 31 % 400] = f"changed in version {version}\n"
        lines.insert(version * 17 % 400, f"inserted in version {version}\n")
        (work / "text.txt").write_text("".join(lines))
        (work / "other.txt").write_text("".join(reversed(lines[: 100 + version * 20])))
        git(work, "add", "-A")
        git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"v{version}")
    git(work, "push", "-q", str(path), "HEAD:refs/heads/main")
    git(path, "-c", f"repack.useDeltaBaseOffset={'true' if offset_deltas else 'false'}",
        "repack", "-adfq")
    return path


def pack_deltas(repo: Path):
    """(target id, base id, delta data) for every delta entry of the repository's one pack."""
    (idx_path,) = (repo / "objects" / "pack").glob("*.idx")
    idx = idx_path.read_bytes()
    pack = idx_path.with_suffix(".pack").read_bytes()
    assert idx[:8] == b"\xfftOc\x00\x00\x00\x02"
    count = struct.unpack(">I", idx[8 + 1020 : 8 + 1024])[0]
    ids = [idx[1032 + 20 * i : 1052 + 20 * i].hex() for i in range(count)]
    offsets = struct.unpack(f">{count}I", idx[1032 + 24 * count : 1032 + 28 * count])
    at_offset = dict(zip(offsets, ids))
    found = []
    for oid, offset in zip(ids, offsets):
        pos = offset
        byte = pack[pos]
        kind = (byte >> 4) & 7
        while byte & 0x80:
            pos += 1
            byte = pack[pos]
        pos += 1
        if kind == 6:
            byte = pack[pos]
            back = byte & 0x7F
            while byte & 0x80:
                pos += 1
                byte = pack[pos]
                back = ((back + 1) << 7) | (byte & 0x7F)
            pos += 1
            base = at_offset[offset - back]
        elif kind == 7:
            base = pack[pos : pos + 20].hex()
            pos += 20
        else:
            continue
        found.append((oid, base, zlib.decompressobj().decompress(pack[pos:])))
    return found


def cat_file(repo: Path, oids) -> dict[str, bytes]:
    out = git(repo, "cat-file", "--batch", input="".join(o + "\n" for o in oids).encode()).stdout
    objects = {}
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        oid, _, size = out[pos:nl].split()
        objects[oid.decode()] = out[nl + 1 : nl + 1 + int(size)]
        pos = nl + 2 + int(size)
    return objects


@pytest.mark.parametrize("apply", IMPLEMENTATIONS)
@pytest.mark.parametrize("offset_deltas", [True, False], ids=["ofs-delta", "ref-delta"])
def test_real_git_deltas(apply, offset_deltas, tmp_path):
    repo = make_deltified_repo(tmp_path / "repo.git", offset_deltas)
    entries = pack_deltas(repo)
    assert len(entries) >= 20, "git wrote too few deltas for the test to mean anything"
    objects = cat_file(repo, {o for o, _, _ in entries} | {b for _, b, _ in entries})
    for oid, base, data in entries:
        assert read_sizes(data[:32])[:2] == (len(objects[base]), len(objects[oid]))
        assert apply(objects[base], data) == objects[oid], oid
