"""The answers to the requests of helper_protocol.py, computed against an odb store: what a
helper process sends back (helper.py), and what the mount computes itself when it has no
helper or does the work on its own (workers.py, object_cache.py, view.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import odb

from gitfs.engine import helper_protocol as hp


def answers(store, request: hp.Request) -> Iterator[tuple[object, bytes]]:
    """The (header, payload) frames answering one request: what a helper sends, and what the
    mount computes itself when it has no helper (which pushes nothing: every item's bytes).
    Each item of a Push is yielded as soon as it is read, so that the mount can push it before
    the reader gets there: answered all at once, a batch reached the kernel after most of its
    files had been asked for by READs, which the loop then read a second time."""
    job = request.job
    if type(job) is hp.Load:
        yield load(store, request.seq, -1, job.oid, job.max_size, job.size)
        return
    if type(job) is hp.Push:
        for k, item in enumerate(job.items):
            yield load(store, request.seq, k, item[0], job.max_size, item[2])
        yield hp.PushDone(request.seq, ()), b""
        return
    sizes, errors, accesses, which = sizes_and_accesses(store, job.ids)
    yield hp.SizesRead(request.seq, errors, accesses), sizes.tobytes() + which.tobytes()


def load(store, seq: int, index: int, oid: bytes, max_size: int, size: int) -> tuple[hp.Loaded, bytes]:
    try:
        if size < 0:
            size = store.read_size(oid)
        if size > max_size:
            return hp.Loaded(seq, index, too_big=True), b""
        return hp.Loaded(seq, index), store.read(oid)[1]
    except Exception as e:  # carried whole to the reader, who gets it as errno
        return hp.Loaded(seq, index, error=_carried(e)), b""


def sizes_and_accesses(store, ids: bytes) -> tuple[array, dict, tuple, array]:
    """(sizes, errors by index, the distinct Access values, which Access each id has): what
    Store.stat_many says, with each Access sent once (objects of one pack share theirs)."""
    try:
        sizes, errors, of_each = store.stat_many(ids)
    except Exception:  # a bug in the bulk path: each id on its own, so one fault stays one id's
        sizes, errors, of_each = _stat_each(store, ids)
    accesses: dict = {}
    index = accesses.setdefault
    which = array("H", [0 if a is None else index(a, len(accesses)) for a in of_each])
    return sizes, {k: _carried(e) for k, e in errors.items()}, tuple(accesses), which


def _stat_each(store, ids: bytes) -> tuple[array, dict, list]:
    n = store.format.raw_len
    sizes, errors, of_each = array("q"), {}, []
    for k, i in enumerate(range(0, len(ids), n)):
        try:
            size, access = store.stat(ids[i : i + n])
        except Exception as e:
            size, access = -1, None
            errors[k] = e
        sizes.append(size)
        of_each.append(access)
    return sizes, errors, of_each


def _carried(error: Exception) -> Exception:
    """odb's errors pickle whole; anything else (a bug) travels as an OdbError naming it."""
    if isinstance(error, (odb.OdbError, OSError)):
        return error
    return odb.OdbError(f"{type(error).__name__}: {error}")
