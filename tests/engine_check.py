"""The two read paths of odb/objects/delta_chain.py (the compiled engine, odb/_engine.c, and the
Python walk around zlib and odb.objects.delta): a fixture that runs a test module on each, and the
engine's delta application as an apply_delta, for the delta tests to hold it to odb.objects.delta's
checks and messages."""

from __future__ import annotations

import contextlib
import threading
import zlib

import pytest

from damage import PackBuilder
from odb.objects import delta, delta_chain

# "c" only where odb/_engine.c is built; its absence shows as a skip in the -ra summary.
ENGINES = ["python", "c"]


@contextlib.contextmanager
def using(engine: str):
    """Stores opened inside the block read through `engine`."""
    if engine == "c" and delta_chain.compiled is None:
        pytest.skip("odb._engine is not built (no C compiler at install?)")
    saved = delta_chain.engine
    delta_chain.engine = delta_chain.compiled if engine == "c" else None
    try:
        yield
    finally:
        delta_chain.engine = saved


@pytest.fixture(autouse=True, params=ENGINES)
def read_engine(request):
    """Imported into a test module, runs each of its tests on both read paths."""
    with using(request.param):
        yield request.param


_lock = threading.Lock()
_compressed: dict = {}  # the last base compressed: the delta tests apply many deltas to one 20 MiB base


def engine_apply(base, data) -> bytes:
    """delta.apply_delta through the engine: a pack of the base and one OFS_DELTA entry, read."""
    base = bytes(base)
    with _lock:  # the thread tests apply from several threads
        if _compressed.get("base") != base:
            # A new pack key for a new base: the engine's cache then serves the base, inflated once.
            _compressed.update(base=base, z=zlib.compress(base, 1), key=_compressed.get("key", 0) + 1)
        if "cache" not in _compressed:
            _compressed["cache"] = delta_chain.compiled.Cache(1 << 30)
        z, key, cache = _compressed["z"], _compressed["key"], _compressed["cache"]
    p = PackBuilder()
    base_offset, base_id = p.whole("blob", base, oid=bytes(20), compressed=z)
    at = p.ofs_delta(base_offset, bytes(data), base_id)
    pack = p.pack_bytes()
    # No result-size limit: apply_delta has none of its own (the chain reader adds it).
    limits = list(delta_chain.engine_limits(20))
    limits[2] = (1 << 64) - 1
    (code, *rest), _ = delta_chain.compiled.read(cache, pack, len(pack) - 20, at, key, None, tuple(limits), 0, None, False)
    if code < 0:
        offset, reason = rest
        assert offset == at and reason.startswith("bad delta: "), reason
        raise delta.DeltaError(reason[len("bad delta: "):])
    assert code == 3
    return rest[0]
