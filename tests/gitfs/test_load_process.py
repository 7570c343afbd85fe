"""The helper process that inflates objects: answers, errors, refresh, and a dead helper."""

from __future__ import annotations

import os
import signal

import pytest

import odb
from fake_store import FakeStore

from gitfs.load_process import LoadProcess

GOOD = "11" * 20
BIG = "22" * 20
BAD = "33" * 20
MISSING = "44" * 20


@pytest.fixture
def helper():
    store = FakeStore({GOOD: ("blob", b"hello\n"), BIG: ("blob", b"x" * 5000), BAD: ("blob", b"?")})
    store.corrupt.add(BAD)
    generation = [0]
    process = LoadProcess(store, 1000, lambda: generation[0])
    yield process, store, generation
    process.close()


def test_answers(helper):
    process, _, _ = helper
    assert process.load(bytes.fromhex(GOOD), None) == b"hello\n"
    assert process.load(bytes.fromhex(GOOD), 6) == b"hello\n"
    assert process.load(bytes.fromhex(BIG), None) is None  # too big to hold whole
    with pytest.raises(odb.ObjectNotFound):
        process.load(bytes.fromhex(MISSING), None)
    with pytest.raises(odb.CorruptObject) as e:
        process.load(bytes.fromhex(BAD), None)
    assert e.value.oid == BAD and e.value.path == "fake.pack" and e.value.offset == 12


def test_a_dead_helper_falls_back_to_loading_here(helper, caplog):
    process, _, _ = helper
    os.kill(process.pid, signal.SIGKILL)
    os.waitpid(process.pid, 0)
    assert process.load(bytes.fromhex(GOOD), None) == b"hello\n"
    assert "failed" in caplog.text
    with pytest.raises(odb.ObjectNotFound):
        process.load(bytes.fromhex(MISSING), None)


def test_closing_ends_the_helper(helper):
    process, _, _ = helper
    process.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)


def test_sizes(helper):
    process, _, _ = helper
    sizes = process.sizes(bytes.fromhex(GOOD + BIG + MISSING + BAD))
    assert sizes[:2] == [6, 5000]
    assert isinstance(sizes[2], odb.ObjectNotFound) and isinstance(sizes[3], odb.CorruptObject)
