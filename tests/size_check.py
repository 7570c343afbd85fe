"""Store.read_sizes against read_size (and stat_many against stat), in each implementation of
odb/pack/sizes.py: the check that the size, damage, hostile and fuzz tests share."""

from __future__ import annotations

import contextlib

import pytest

from limits import Hang
from odb.pack import sizes

BATCH = 256  # what the mount's helpers ask for at once

# "c" only where odb/_sizes.c is built; its absence shows as a skip in the -ra summary.
IMPLEMENTATIONS = ["python", "c"]


@contextlib.contextmanager
def using(implementation: str):
    """odb/pack/sizes.py computes with `implementation` inside the block."""
    if implementation == "c" and sizes.compiled is None:
        pytest.skip("odb._sizes is not built (no C compiler or zlib headers at install?)")
    saved = sizes.accelerator
    sizes.accelerator = sizes.compiled if implementation == "c" else None
    try:
        yield
    finally:
        sizes.accelerator = saved


def available() -> list[str]:
    return ["python"] + (["c"] if sizes.compiled is not None else [])


def answer(call, *args):
    """What a call gives: its value, or (exception type, message) for what it raises."""
    try:
        return call(*args)
    except Hang:
        raise
    except Exception as e:
        return type(e), str(e)


def batched(store, raw_ids: list[bytes], batch: int = BATCH) -> list:
    """read_sizes over raw_ids in batches, as one list of answers in answer()'s form."""
    out = []
    for i in range(0, len(raw_ids), batch):
        chunk = raw_ids[i : i + batch]
        got, errors = store.read_sizes(b"".join(chunk))
        assert got.typecode == "q" and len(got) == len(chunk)
        assert set(errors) == {k for k, size in enumerate(got) if size == -1}
        out += [(type(errors[k]), str(errors[k])) if k in errors else got[k] for k in range(len(chunk))]
    return out


def batched_stats(store, raw_ids: list[bytes], batch: int = BATCH) -> list:
    """stat_many over raw_ids in batches, in answer()'s form of stat's answers."""
    out = []
    for i in range(0, len(raw_ids), batch):
        chunk = raw_ids[i : i + batch]
        got, errors, accesses = store.stat_many(b"".join(chunk))
        assert len(got) == len(accesses) == len(chunk)
        assert set(errors) == {k for k, a in enumerate(accesses) if a is None}
        out += [(type(errors[k]), str(errors[k])) if k in errors else (got[k], accesses[k]) for k in range(len(chunk))]
    return out


def check_sizes(store, oids, *, batch: int = BATCH) -> list:
    """read_sizes of every id gives exactly what read_size gives (the size, or the same exception
    with the same message), in every implementation built; returns those answers. The C path
    (where built) goes first, so that it meets the store as the caller left it: packs not yet
    opened or checked, no error seen yet."""
    raw_ids = [bytes.fromhex(o) if isinstance(o, str) else bytes(o) for o in oids]
    got = {}
    first, *rest = reversed(available())
    with using(first):
        got[first] = batched(store, raw_ids, batch)
    want = [answer(store.read_size, raw) for raw in raw_ids]
    for implementation in rest:
        with using(implementation):
            got[implementation] = batched(store, raw_ids, batch)
    for implementation, answers in got.items():
        diff = [(raw.hex(), w, g) for raw, w, g in zip(raw_ids, want, answers) if w != g]
        assert not diff, f"{implementation}: read_sizes differs from read_size: {diff[:5]}"
    want_stats = [answer(store.stat, raw) for raw in raw_ids]
    for implementation in available():
        with using(implementation):
            stats = batched_stats(store, raw_ids, batch)
        diff = [(raw.hex(), w, g) for raw, w, g in zip(raw_ids, want_stats, stats) if w != g]
        assert not diff, f"{implementation}: stat_many differs from stat: {diff[:5]}"
    return want
