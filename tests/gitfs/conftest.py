"""Fixtures for the gitfs tests: detached mounts, and a check that none leaks."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib and only tests/ on the path; the
# helpers beside this file (mounting, fake_store) are imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mounting import Mount, abort_connection  # noqa: E402

# A test's mounts are aborted if it runs longer: a hung mount fails its test, never the suite.
MOUNT_TEST_DEADLINE = 240.0


@pytest.fixture
def mount(fuse_available, tmp_path):
    """mount(repo, *options) -> Mount; unmounted (and its log checked) at the end of the test."""
    made = []
    expired = []

    def make(repo: Path, *extra: str, env: dict | None = None) -> Mount:
        n = len(made)
        m = Mount(repo, tmp_path / f"mnt{n}", tmp_path / f"gitfs{n}.log", *extra, env=env)
        made.append(m)
        return m

    def expire() -> None:
        # Whatever the test waits on in the mount now fails (ECONNABORTED) instead of hanging.
        expired.extend(m.path for m in made if abort_connection(m.path))

    watchdog = threading.Timer(MOUNT_TEST_DEADLINE, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield make
    finally:
        watchdog.cancel()
    assert not expired, f"test ran over {MOUNT_TEST_DEADLINE:.0f} s: aborted the FUSE connections of {expired}"
    for m in made:
        m.unmount()
        assert "Traceback" not in m.log(), m.log()


def _gitfs_mounts_under(base: Path) -> list[str]:
    # Another mount's path may be in any encoding (a test elsewhere mounts a Latin-1 one).
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as f:
        fields = [line.split() for line in f]
    return [f[1] for f in fields if f[2] == "fuse.gitfs" and f[1].startswith(str(base))]


@pytest.fixture(scope="session", autouse=True)
def no_leaked_mounts(tmp_path_factory):
    """After the whole session, no gitfs mount made by a test may be left behind."""
    base = tmp_path_factory.getbasetemp()
    yield
    leaked = _gitfs_mounts_under(base)
    for path in leaked:
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
    assert not leaked, f"gitfs mounts leaked by the tests: {leaked}"
