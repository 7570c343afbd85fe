"""Time and memory limits for tests that feed odb hostile bytes: a hang or a big allocation fails."""

from __future__ import annotations

import contextlib
import signal
import tracemalloc


class Hang(Exception):
    """Raised by time_limit. Not an OSError (as TimeoutError is), which odb would catch as I/O."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fails the test (instead of hanging the suite) if the block runs longer than seconds."""

    def expire(signum, frame):
        raise Hang(f"hang: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def memory_limit(limit: int):
    """Fails if Python allocations inside the block peak above limit bytes."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak Python allocation {peak} bytes, limit {limit}"
