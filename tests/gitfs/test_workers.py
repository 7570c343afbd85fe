"""The worker pool and its helper processes: answers, priorities, deadlines, dead and stopped helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import odb
from gitfs.engine import helper_protocol as hp
from gitfs.engine.workers import Job, WorkerPool

from cli_checks import running
from mounting import ROOT


class Collector:
    """Job callbacks that record (name, header, payload) in completion order."""

    def __init__(self):
        self.answers = []
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def callback(self, name):
        def done(header, payload):
            with self.done:
                self.answers.append((name, header, bytes(payload)))
                self.done.notify_all()
        return done

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.done:
            while len(self.answers) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.answers)} of {count} answers after {timeout} s"
                self.done.wait(left)


@pytest.fixture
def pool_of(fixture_repo):
    pools = []

    def make(name: str, workers: int = 1, deadline: float = 5.0, repository=None):
        repo = fixture_repo(name)
        store = odb.open(repo.path)
        config = hp.StoreConfig(str(repository or repo.path), False, tuple(sys.path))
        pool = WorkerPool(store, config, workers, deadline=deadline)
        pools.append(pool)
        wait_for(lambda: len(pool.helper_pids()) == workers, 20)
        return pool, repo

    yield make
    for pool in pools:
        pool.close()


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_helpers_answer_loads_and_sizes_as_git_does(pool_of):
    pool, repo = pool_of("midx", workers=2)
    objects = repo.git.objects()
    ids = sorted(objects)[:60]
    got = Collector()
    jobs = [Job(hp.AHEAD, hp.Load(bytes.fromhex(h), 1 << 30), got.callback(h)) for h in ids]
    jobs.append(Job(hp.SIZES, hp.Sizes(b"".join(bytes.fromhex(h) for h in ids)), got.callback("sizes")))
    pool.submit(*jobs)
    got.wait(len(jobs), 30)
    contents = {oid: data for oid, _, data in repo.git.contents(ids)}
    for name, header, payload in got.answers:
        if name == "sizes":
            sizes = memoryview(payload)[: 8 * len(ids)].cast("q").tolist()
            which = memoryview(payload)[8 * len(ids) :].cast("H").tolist()
            assert sizes == [objects[h][1] for h in ids] and header.errors == {}
            assert len(which) == len(ids) and set(which) == set(range(len(header.accesses)))
        else:
            assert header.error is None and payload == contents[name]
    assert pool.counts["helper"] == len(jobs) and not pool.counts["in-process"]


def test_a_push_without_a_session_sends_every_item_back(pool_of):
    pool, repo = pool_of("bare")
    ids = sorted(repo.git.objects())[:10]
    got = Collector()
    items = tuple((bytes.fromhex(h), 1 << 40 | k, -1, hp.ReaderAt(1, k)) for k, h in enumerate(ids))
    pool.submit(Job(hp.AHEAD, hp.Push(items, 1 << 30), got.callback("push")))
    got.wait(len(ids) + 1, 30)
    *loaded, (_, last, _) = got.answers
    assert last == hp.PushDone(last.seq, ())
    contents = {oid: data for oid, _, data in repo.git.contents(ids)}
    assert {ids[h.index]: p for _, h, p in loaded} == contents


def test_errors_come_back_whole(pool_of):
    pool, _ = pool_of("bare")
    got = Collector()
    missing = bytes(range(20))
    pool.submit(Job(hp.URGENT, hp.Load(missing, 1 << 30), got.callback("x")))
    got.wait(1, 30)
    error = got.answers[0][1].error
    assert type(error) is odb.ObjectNotFound and error.oid == missing.hex()


def test_urgent_work_does_not_wait_behind_read_ahead(pool_of):
    pool, repo = pool_of("ambiguous")
    ids = sorted(repo.git.objects())
    got = Collector()
    pool.submit(*[Job(hp.AHEAD, hp.Load(bytes.fromhex(h), 1 << 30), got.callback("ahead")) for h in ids[:600]])
    got.wait(5, 30)  # the helper is busy with read-ahead now
    with got.lock:  # answers keep coming while this thread waits for a core: count from here
        answered_before = len(got.answers)
    pool.submit(Job(hp.URGENT, hp.Load(bytes.fromhex(ids[-1]), 1 << 30), got.callback("urgent")))
    got.wait(601, 60)
    overtaken_by = [name for name, _, _ in got.answers].index("urgent") - answered_before
    # It overtakes nearly all of the queued: at most the window in flight goes first.
    assert answered_before < 590 and overtaken_by < 10 + 5, (answered_before, overtaken_by)


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_lost_helper_is_replaced_and_its_work_done_here(pool_of, how):
    pool, repo = pool_of("midx", deadline=1.0)
    (victim,) = pool.helper_pids()
    os.kill(victim, signal.SIGSTOP if how == "stopped" else signal.SIGKILL)
    ids = sorted(repo.git.objects())[:40]
    got = Collector()
    t = time.monotonic()
    pool.submit(*[Job(hp.URGENT, hp.Load(bytes.fromhex(h), 1 << 30), got.callback(h)) for h in ids])
    got.wait(len(ids), 20)
    assert time.monotonic() - t < 10
    contents = {oid: data for oid, _, data in repo.git.contents(ids)}
    assert {name: payload for name, _, payload in got.answers} == contents
    assert pool.counts["helpers-replaced"] == 1
    assert not running(victim)  # killed and reaped, even when it was stopped
    wait_for(lambda: pool.helper_pids() and pool.helper_pids() != [victim], 30)  # a new one


def test_without_helpers_the_threads_do_the_work(fixture_repo):
    repo = fixture_repo("bare")
    store = odb.open(repo.path)
    config = hp.StoreConfig("/nonexistent/repository", False, tuple(sys.path))
    pool = WorkerPool(store, config, 1)
    try:
        ids = sorted(repo.git.objects())[:5]
        got = Collector()
        pool.submit(*[Job(hp.URGENT, hp.Load(bytes.fromhex(h), 1 << 30), got.callback(h)) for h in ids])
        got.wait(len(ids), 30)
        contents = {oid: data for oid, _, data in repo.git.contents(ids)}
        assert {name: payload for name, _, payload in got.answers} == contents
        assert pool.helper_pids() == []
    finally:
        pool.close()


def test_closing_leaves_no_helper_behind(pool_of):
    pool, _ = pool_of("bare", workers=2)
    pids = pool.helper_pids()
    pool.close()
    assert not any(running(pid) for pid in pids)


def test_a_wake_up_after_closing_writes_nowhere(pool_of):
    """wake() may come from any thread while the pool closes: once a worker has ended, its pipe
    is closed and wake() does nothing (it once wrote to a closed descriptor, or to the file that
    had taken its number, and the mount's shutdown failed before saying it had unmounted)."""
    pool, repo = pool_of("bare", workers=2)
    got = Collector()
    ids = sorted(repo.git.objects())
    pool.submit(*[Job(hp.AHEAD, hp.Load(bytes.fromhex(h), 1 << 30), got.callback(h)) for h in ids])
    workers = list(pool._workers)
    numbers = {fd for w in workers for fd in (w._wake_r, w._wake_w)}
    pool.close()
    assert all(w._wake_r == w._wake_w == -1 for w in workers)  # each wake-up pipe is closed
    # New pipes take the lowest free numbers, the closed wake-up pipes' among them: a wake()
    # that still wrote to its old number would write into one of these.
    spares = [os.pipe() for _ in range(len(numbers))]
    try:
        assert numbers & {fd for pair in spares for fd in pair}, "no closed number was reused"
        for w in workers:
            w._inflight[0] = None  # as if work were still out: wake() would write
            w.wake(True)
            w._inflight.clear()
        for r, _ in spares:
            os.set_blocking(r, False)
            with pytest.raises(BlockingIOError):
                os.read(r, 1)  # nothing was written to any of them
    finally:
        for pair in spares:
            os.close(pair[0])
            os.close(pair[1])
    pool.close()  # twice is harmless


@pytest.mark.parametrize("helpers", ["1", "0"])
def test_the_delta_bases_share_git_s_96_mib_or_half_a_smaller_cache_size(monkeypatch, helpers):
    """The mount and its helpers split git's 96 MiB of delta bases; half a --cache-size below
    twice that bounds them instead (the 600-open-files memory row of scripts/bench, at 64M)."""
    from gitfs.fuse import daemon
    monkeypatch.setenv("GITFS_HELPERS", helpers)
    for cache_size, total in ((256 << 20, 96 << 20), (192 << 20, 96 << 20), (96 << 20, 48 << 20), (64 << 20, 32 << 20),
                              (1 << 20, 1 << 19)):
        mount, each_helper = daemon.delta_base_caches(cache_size)
        if helpers == "1":
            assert mount == each_helper == total // (daemon.HELPERS + 1)
        else:
            assert (mount, each_helper) == (total, 0)


class _CountingStore:
    def __init__(self):
        self.released = 0

    def release_memory(self) -> None:
        self.released += 1


def test_an_idle_helper_gives_back_its_delta_bases(monkeypatch):
    """After IDLE_AFTER without a request a helper drops its delta bases (a helper that read
    through a walk held 80-90 MB after it); while requests wait it does not."""
    from gitfs.engine import helper

    monkeypatch.setattr(helper, "IDLE_AFTER", 0.01)
    requests, sender = os.pipe()
    store = _CountingStore()
    h = helper.Helper(store, requests, -1)
    try:
        h._idle()
        assert store.released == 1
        os.write(sender, b"x")  # a request is there: no waiting, nothing given back
        h._idle()
        assert store.released == 1
    finally:
        os.close(requests)
        os.close(sender)


def test_release_memory_empties_the_delta_base_cache(fixture_repo):
    with odb.open(fixture_repo("midx").path) as store:
        for oid in list(store)[:50]:
            store.read(oid)
        assert store._reader.cache.used > 0
        store.release_memory()
        assert store._reader.cache.used == 0


def test_the_allocator_maps_big_blocks_on_their_own():
    """bound_allocator fixes glibc's mmap threshold: blocks of a few MiB are still mapped on
    their own (and returned when freed) after a bigger one was freed, which would otherwise
    raise the threshold and put them on the heap. Counted with mallinfo2 (glibc 2.33), in a
    process of its own: other threads of this one map and free blocks meanwhile."""
    import ctypes
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("not glibc 2.33 or later")
    probe = """
import ctypes, sys
from gitfs.engine import memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "bound":
    memory.bound_allocator()
big = bytearray(8 << 20)
del big  # unbounded, glibc's threshold is now 8 MiB
mapped = libc.mallinfo2().hblks
blocks = [bytearray(2 << 20) for _ in range(16)]
print(libc.mallinfo2().hblks - mapped)
"""
    counts = {}
    for mode in ("bound", "glibc's own"):
        done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, timeout=60,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr
        counts[mode] = int(done.stdout)
    assert counts == {"bound": 16, "glibc's own": 0}


class _HeldPool:
    """A pool that takes jobs and runs none: the test answers them, as a helper would."""

    def __init__(self, store):
        self.store = store
        self.jobs = []
        self.promoted = []

    def submit(self, *jobs):
        self.jobs.extend(jobs)

    def promote(self, job, lane=hp.URGENT, index=-1, where=hp.NOWHERE):
        self.promoted.append((job, index))


@pytest.mark.parametrize("news", ["pushing", "none"])
def test_a_reader_of_an_object_a_helper_pushes_makes_it_at_once(fixture_repo, news):
    """A helper pushing an object waits for the page that a READ of it holds, and the READ waits
    for the helper: hp.Pushing ends the reader's wait at once (it makes the object itself). Without
    the news the reader waits the whole hedge (long here, so that the two cannot be confused)."""
    import trio
    from gitfs.engine.object_cache import Loads, ObjectCache

    repo = fixture_repo("bare")
    oid = sorted(repo.git.objects())[0]
    raw = bytes.fromhex(oid)
    pool = _HeldPool(odb.open(repo.path))
    hedge = 0.5 if news == "none" else 30.0
    loads = Loads(pool, ObjectCache(1 << 30), hedge_after=hedge)

    async def main():
        assert loads.push([(raw, 1 << 40, -1, hp.ReaderAt(1, 0), lambda data: None)]) == 1
        (job,) = pool.jobs
        async with trio.open_nursery() as nursery:
            got = []

            async def reader():
                got.append(await loads.get(raw, hp.ReaderAt(1, 0)))

            nursery.start_soon(reader)
            await trio.sleep(0.05)
            assert pool.promoted == [(job, 0)] and not got  # claimed, and waiting
            began = trio.current_time()
            if news == "pushing":
                await trio.to_thread.run_sync(job.done, hp.Pushing(job.seq, 0), b"")
        waited = trio.current_time() - began
        return got, waited

    got, waited = trio.run(main)
    assert got == [next(iter(repo.git.contents([oid])))[2]]
    assert waited < 5.0 if news == "pushing" else waited >= 0.3
    assert loads.counts["hedged"] == 1
