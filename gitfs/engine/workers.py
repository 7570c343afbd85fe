"""The mount's one worker pool: lanes of work, and helper processes each owned by one thread.

Work comes in three lanes, served in priority order: urgent (a reader waits), sizes (a listing
waits for its entries' sizes) and ahead (objects inflated before a reader asks). Each Worker is a
thread that owns at most one helper process (helper.py): it keeps a few requests in flight
there, urgent ones beyond that window, and the helper serves the most urgent it holds first.

Every request to a helper has a deadline: the helper must answer something within DEADLINE of
its previous answer while it holds work. A helper that misses it (stopped, blocked, looping) or
that dies is killed and reaped, the requests it held are done in this process by its thread, and a
new helper is started after a back-off. Without helpers (none asked for, or none can start) the
threads do the work themselves: slower, since they share the GIL with the FUSE loop, but complete.

A job's `done(header, payload)` runs in the worker thread that finished it; it must not block on
the trio loop (see gitfs/view/mount_view.py for why pushes into the page cache happen here).
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import select
import subprocess
import sys
import threading
import time

from gitfs.engine import answers
from gitfs.engine import helper_protocol as hp
from gitfs.tuning import IN_FLIGHT, PIPE_SIZE as _PIPE_SIZE

log = logging.getLogger("gitfs")

DEADLINE = 5.0  # seconds a busy helper may stay silent
START_DEADLINE = 10.0  # a new interpreter importing odb, on a loaded machine
RESPAWN_BACKOFF = (1.0, 60.0)
_F_SETPIPE_SZ = 1031


class Job:
    """One unit of work: a helper request (hp.Load / hp.Sizes), or `local`, a callable that a
    worker thread runs itself (a push into the page cache)."""

    __slots__ = ("lane", "request", "local", "done", "seq", "worker")

    def __init__(self, lane: int, request=None, done=None, local=None):
        self.lane = lane
        self.request = request
        self.done = done
        self.local = local
        self.seq = 0
        self.worker: Worker | None = None  # the worker holding it in flight


class WorkerPool:
    def __init__(self, store, config: hp.StoreConfig | None, workers: int, *, deadline: float = DEADLINE,
                 start: bool = True):
        """config None: no helper processes, the worker threads do the work. start=False: the
        threads (and helpers) start at start(), once the FUSE session exists."""
        self.store = store
        self.deadline = deadline
        self.config = config
        self._workers_wanted = max(1, workers)
        self._lanes = [collections.deque() for _ in hp.LANE_NAMES]
        self._cond = threading.Condition()
        self._stopped = False
        self._seq = 0
        self.counts = collections.Counter()  # what was done where, for the status and the log
        self._workers: list[Worker] = []
        if start:
            self.start()

    def start(self, device: int = -1) -> None:
        """Starts the workers; their helpers inherit device, the FUSE session's descriptor."""
        if self.config is not None and device >= 0:
            self.config = self.config._replace(device=device)
        self._workers = [Worker(self, i, self.config) for i in range(self._workers_wanted)]
        for w in self._workers:
            w.start()

    # -- from the trio loop (or any thread) -------------------------------------------------

    def submit(self, *jobs: Job) -> None:
        with self._cond:
            if self._stopped:
                return
            urgent = False
            for job in jobs:
                self._seq += 1
                job.seq = self._seq
                if job.lane == hp.URGENT:
                    self._lanes[hp.URGENT].appendleft(job)
                    urgent = True
                else:
                    self._lanes[job.lane].append(job)
            self._cond.notify(len(jobs))
        for w in self._workers:
            w.wake(urgent)

    def promote(self, job: Job, lane: int = hp.URGENT, index: int = -1, where: hp.ReaderAt = hp.NOWHERE) -> None:
        """Someone now waits for job (its item index, for a Push), submitted in a lower lane: move
        it up to lane; a helper holding it already serves it next (hp.Bump)."""
        with self._cond:
            queued = self._lanes[job.lane]
            if job.worker is None and job in queued:
                if job.lane > lane:
                    queued.remove(job)
                    job.lane = lane
                    self._lanes[lane].append(job)
                    self._cond.notify()
                return
            holder = job.worker if lane == hp.URGENT else None
        if holder is not None:
            holder.bump(job, index, where)

    def close(self, timeout: float = 10.0) -> None:
        """Stops the workers and their helpers; queued work is dropped (the mount is ending)."""
        with self._cond:
            self._stopped = True
            for lane in self._lanes:
                lane.clear()
            self._cond.notify_all()
        for w in self._workers:
            w.wake(True)
        for w in self._workers:
            w.join(timeout)
            if not w.is_alive():
                w.close_pipe()

    def helper_pids(self) -> list[int]:
        return [w.helper.pid for w in self._workers if w.helper is not None]

    # -- from worker threads ----------------------------------------------------------------

    def take(self, block: bool, urgent_only: bool = False) -> Job | None:
        """The most urgent queued job, or None (stopped, or nothing queued and not block)."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                lanes = self._lanes[:1] if urgent_only else self._lanes
                for lane in lanes:
                    if lane:
                        return lane.popleft()
                if not block:
                    return None
                self._cond.wait()

    @property
    def stopped(self) -> bool:
        return self._stopped


class HelperProcess:
    """A started helper: its pipes (non-blocking, our ends) and its process."""

    def __init__(self, config: hp.StoreConfig):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in config.sys_path if p))
        # Only the FUSE session's descriptor is inherited (to push into the page cache).
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from gitfs.engine.helper import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True, pass_fds=(config.device,) if config.device >= 0 else (), env=env, cwd="/")
        self.pid = self._proc.pid
        self.requests = self._proc.stdin.fileno()
        self.answers = self._proc.stdout.fileno()
        for fd in (self.requests, self.answers):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)  # fewer trips for big objects
            except OSError:
                pass
            os.set_blocking(fd, False)
        try:
            hp.write_frame(self.requests, config, deadline=time.monotonic() + START_DEADLINE)
            deadline = time.monotonic() + START_DEADLINE
            self.reader = hp.FrameReader(self.answers)
            ready, _ = self.reader.read(deadline)
            while type(ready) is hp.LogLine:  # opening the store may warn (a bad index, say)
                _relog(ready, self.pid)
                ready, _ = self.reader.read(deadline)
            if type(ready) is not hp.Ready:
                raise hp.HelperGone(f"started with {type(ready).__name__}")
        except hp.HelperGone:
            self.kill()
            raise

    def kill(self) -> None:
        """Kills and reaps: no zombie is left, whatever state the helper was in (even stopped)."""
        try:
            self._proc.kill()
        except OSError:
            pass
        self._proc.wait()
        self._proc.stdin.close()
        self._proc.stdout.close()

    def close(self, timeout: float) -> None:
        """Closes its request pipe (it exits at EOF), then reaps it; kills it if it lingers."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


class Worker(threading.Thread):
    def __init__(self, pool: WorkerPool, number: int, config: hp.StoreConfig | None):
        super().__init__(name=f"gitfs-worker-{number}", daemon=True)
        self.pool = pool
        self.config = config
        self.helper: HelperProcess | None = None
        self._inflight: dict[int, tuple[Job, float]] = {}  # seq -> (job, when sent)
        self._last_answer = 0.0
        self._backoff = RESPAWN_BACKOFF[0]
        self._next_start = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipe_lock = threading.Lock()
        self._bumps: list[Job] = []
        self._bump_lock = threading.Lock()

    # -- from other threads -------------------------------------------------------------------

    def wake(self, urgent: bool) -> None:
        """Interrupts a wait on the helper's answers, when new work could be sent to it."""
        if self._inflight and (urgent or len(self._inflight) < IN_FLIGHT):
            with self._pipe_lock:
                if self._wake_w < 0:
                    return  # closed: the thread has ended
                try:
                    os.write(self._wake_w, b"!")
                except BlockingIOError:
                    pass  # a wake-up is pending already

    def bump(self, job: Job, index: int, where: hp.ReaderAt) -> None:
        with self._bump_lock:
            self._bumps.append((job, index, where))
        self.wake(True)

    # -- the thread -----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.pool.stopped:
                if self.helper is None and self.config is not None and time.monotonic() >= self._next_start:
                    self._start_helper()
                if self.helper is None:
                    self._work_here()
                else:
                    self._work_remotely()
        finally:
            if self.helper is not None:
                self.helper.close(timeout=5.0)

    def close_pipe(self) -> None:
        """Once the thread has ended: its wake-up pipe goes. (Closing it in the thread raced
        with wake() from the pool's close(): a write to a closed descriptor, or to whatever
        file had taken its number since.)"""
        with self._pipe_lock:
            if self._wake_r < 0:
                return  # closed already (the pool may be closed twice)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def _start_helper(self) -> None:
        try:
            self.helper = HelperProcess(self.config)
            self._backoff = RESPAWN_BACKOFF[0]
        except (OSError, hp.HelperGone) as e:
            log.warning("%s: cannot start a helper process (%s); working in the mount process", self.name, e)
            self._next_start = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, RESPAWN_BACKOFF[1])

    def _work_here(self) -> None:
        """No helper: do one job in this thread (waiting at most until the next helper start)."""
        job = self.pool.take(block=self.config is None)
        if job is None:
            if self.config is not None and not self.pool.stopped:
                time.sleep(min(0.05, max(0.0, self._next_start - time.monotonic())))
            return
        self._do_here(job)

    def _do_here(self, job: Job) -> None:
        self.pool.counts["in-process"] += 1
        if job.local is not None:
            _guarded(job.local)
            return
        for header, payload in answers.answers(self.pool.store, hp.Request(job.seq, job.lane, 0, job.request)):
            _guarded(job.done, header, payload)

    def _work_remotely(self) -> None:
        try:
            while not self.pool.stopped:
                self._fill()
                if not self._inflight:
                    job = self.pool.take(block=True)
                    if job is not None:
                        self._dispatch(job)
                    continue
                self._wait_for_answers()
        except hp.HelperGone as e:
            self._lose_helper(e)

    def _fill(self) -> None:
        while True:
            full = len(self._inflight) >= IN_FLIGHT
            job = self.pool.take(block=False, urgent_only=full)
            if job is None:
                return
            self._dispatch(job)

    def _dispatch(self, job: Job) -> None:
        if job.local is not None:
            self._do_here(job)
            return
        now = time.monotonic()
        if not self._inflight:
            self._last_answer = now
        request = hp.Request(job.seq, job.lane, self.pool.store.generation, job.request)
        job.worker = self
        self._inflight[job.seq] = (job, now)
        hp.write_frame(self.helper.requests, request, deadline=now + self.pool.deadline)

    def _wait_for_answers(self) -> None:
        deadline = self._last_answer + self.pool.deadline
        left = deadline - time.monotonic()
        if left <= 0:
            raise hp.HelperGone(f"no answer for {self.pool.deadline:.0f} s")
        if self._bumps:
            self._send_bumps()
        reader = self.helper.reader
        if reader.buffered():
            ready = [self.helper.answers]
        else:
            ready, _, _ = select.select([self.helper.answers, self._wake_r], [], [], left)
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
            self._send_bumps()
        if self.helper.answers in ready:
            header, payload = reader.read(time.monotonic() + self.pool.deadline)
            self._last_answer = time.monotonic()
            self._take_answer(header, payload)

    def _send_bumps(self) -> None:
        with self._bump_lock:
            bumps, self._bumps = self._bumps, []
        for job, index, where in bumps:
            if job.seq in self._inflight:
                hp.write_frame(self.helper.requests, hp.Bump(job.seq, index, where),
                               deadline=time.monotonic() + self.pool.deadline)

    def _take_answer(self, header, payload) -> None:
        if type(header) is hp.LogLine:
            _relog(header, self.helper.pid)
            return
        seq = getattr(header, "seq", None)
        entry = self._inflight.get(seq)
        if entry is None:
            raise hp.HelperGone(f"answer to a request it was not sent: {header!r}"[:200])
        job = entry[0]
        if type(header) is hp.Pushing:  # news of an item, not an answer
            _guarded(job.done, header, payload)
            return
        if type(header) is not hp.Loaded or header.index < 0:  # the last answer to its request
            del self._inflight[seq]
            job.worker = None
            self.pool.counts["helper"] += 1
        _guarded(job.done, header, payload)

    def _lose_helper(self, error: hp.HelperGone) -> None:
        helper_process, self.helper = self.helper, None
        log.error("helper process %d failed (%s); replacing it, its %d requests done here",
                  helper_process.pid, error, len(self._inflight))
        helper_process.kill()
        self.pool.counts["helpers-replaced"] += 1
        inflight, self._inflight = self._inflight, {}
        for job, _ in sorted(inflight.values(), key=lambda entry: (entry[0].lane, entry[0].seq)):
            job.worker = None
            self._do_here(job)
        self._next_start = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RESPAWN_BACKOFF[1])


def _guarded(fn, *args) -> None:
    """Runs a job's callback; a bug in one must not take the worker (and its helper) down."""
    try:
        fn(*args)
    except Exception:
        log.exception("a worker's job failed")


def _relog(line: hp.LogLine, pid: int) -> None:
    logging.getLogger(line.name).log(line.level, "helper %d: %s", pid, line.message)
