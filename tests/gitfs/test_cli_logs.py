"""Where the mount logs: --log-file checked before mounting, syslog or a documented file when
detached, never nowhere; and a warning repeated in a loop is one line and a count."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cli_checks import force_unmount, one_line_error
from gitfs.cli import logs
from mounting import mounted, run_gitfs, unmount, wait_until
from oracle import colliding_prefixes


def refused_log(repo: Path, tmp_path: Path, log_file: str) -> str:
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    start = time.monotonic()
    done = run_gitfs("mount", "--log-file", log_file, str(repo), str(mnt), timeout=20)
    assert time.monotonic() - start < 10
    line = one_line_error(done, code=1)
    assert not mounted(mnt)
    return line


def test_a_fifo_is_refused_without_hanging(fixture_repo, fuse_available, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    line = refused_log(fixture_repo("bare").path, tmp_path, str(fifo))
    assert line == f"gitfs: cannot write the log file {fifo}: not a regular file"


def test_a_fifo_with_a_reader_is_refused_too(fixture_repo, fuse_available, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.DEVNULL)
    try:
        line = refused_log(fixture_repo("bare").path, tmp_path, str(fifo))
        assert line.endswith("not a regular file")
    finally:
        reader.kill()
        reader.wait()


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_a_device_is_refused(fixture_repo, fuse_available, tmp_path, device):
    assert refused_log(fixture_repo("bare").path, tmp_path, device) == \
        f"gitfs: cannot write the log file {device}: not a regular file"


def test_a_directory_is_refused(fixture_repo, fuse_available, tmp_path):
    assert refused_log(fixture_repo("bare").path, tmp_path, str(tmp_path)).endswith("not a regular file")


@pytest.fixture
def small_tmpfs(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "gitfs-test", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_is_refused(fixture_repo, fuse_available, tmp_path, small_tmpfs):
    fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    line = refused_log(fixture_repo("bare").path, tmp_path, str(small_tmpfs / "gitfs.log"))
    assert line == f"gitfs: cannot write the log file {small_tmpfs / 'gitfs.log'}: No space left on device"


def test_a_read_only_file_system_is_refused(fixture_repo, fuse_available, tmp_path, small_tmpfs):
    (small_tmpfs / "gitfs.log").write_text("")
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    line = refused_log(fixture_repo("bare").path, tmp_path, str(small_tmpfs / "gitfs.log"))
    assert line == f"gitfs: cannot write the log file {small_tmpfs / 'gitfs.log'}: Read-only file system"


def test_a_test_mount_leaves_the_shared_log_alone(fixture_repo, fuse_available, tmp_path, detached_log):
    """A detached mount without --log-file logs to $GITFS_LOG_FILE, which the tests set to a file in
    the test's own temporary directory, and not to syslog or /var/log/gitfs/gitfs.log (the
    machine's log, shared)."""
    shared = Path("/var/log/gitfs/gitfs.log")
    before = shared.stat() if shared.exists() else None
    own = detached_log
    assert own.parent == tmp_path
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = run_gitfs("mount", str(fixture_repo("bare").path), str(mnt))
    try:
        assert done.returncode == 0, done.stderr
    finally:
        unmount(mnt)
        force_unmount(mnt)
    assert wait_until(lambda: f"unmounted {mnt}" in own.read_text())
    after = shared.stat() if shared.exists() else None
    assert (after and (after.st_size, after.st_mtime_ns)) == (before and (before.st_size, before.st_mtime_ns))


def test_gitfs_log_file_names_a_detached_mount_s_log(monkeypatch, tmp_path):
    monkeypatch.setenv("GITFS_LOG_FILE", str(tmp_path / "mine.log"))
    dest = logs.choose(None, detached=True)
    try:
        assert dest.kind == "file" and dest.path == str(tmp_path / "mine.log")
    finally:
        dest.stream.close()
    assert logs.choose(None, detached=False).kind == "stderr"
    dest = logs.choose(str(tmp_path / "given.log"), detached=True)
    dest.stream.close()
    assert dest.path == str(tmp_path / "given.log")


def test_the_default_file_follows_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GITFS_LOG_FILE")  # what the tests set (tests/conftest.py)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert logs.default_log_file() == str(tmp_path / "state" / "gitfs" / "gitfs.log")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert logs.default_log_file() == str(tmp_path / "home" / ".local" / "state" / "gitfs" / "gitfs.log")
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", str(tmp_path / "no-syslog"))
    dest = logs.choose(None, detached=True)
    try:
        assert dest.kind == "file" and dest.path == logs.default_log_file()
        assert "gitfs" in Path(dest.path).read_text()  # the first line is written at once
    finally:
        dest.stream.close()


def test_syslog_is_used_when_it_answers(monkeypatch, tmp_path):
    monkeypatch.delenv("GITFS_LOG_FILE")  # what the tests set (tests/conftest.py)
    address = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(5)
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", address)
    dest = logs.choose(None, detached=True)
    assert dest.kind == "syslog"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup_logging(dest, debug=False)
        logging.getLogger("gitfs").warning("hello %s", "syslog")
        assert server.recv(4096).endswith(b"gitfs[%d]: WARNING hello syslog\x00" % os.getpid())
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        dest.stream.close()
        server.close()


def test_a_stale_syslog_socket_falls_back_to_the_file(monkeypatch, tmp_path):
    monkeypatch.delenv("GITFS_LOG_FILE")  # what the tests set (tests/conftest.py)
    address = str(tmp_path / "log.sock")
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(address)  # closed at once: nobody listens
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", address)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    dest = logs.choose(None, detached=True)
    try:
        assert dest.kind == "file"
    finally:
        dest.stream.close()


# -- rate limiting ------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def record(message: str, level: int = logging.WARNING, *args) -> logging.LogRecord:
    return logging.LogRecord("gitfs", level, __file__, 0, message, args, None)


def test_repeats_are_held_back_and_counted():
    clock = Clock()
    f = logs.RepeatFilter(clock)
    assert f.filter(record("short id %s is ambiguous", logging.WARNING, "2583"))
    assert not any(f.filter(record("short id %s is ambiguous", logging.WARNING, "2583")) for _ in range(500))
    assert f.filter(record("another cause"))
    assert f.filter(record("below warning", logging.INFO))
    assert f.filter(record("below warning", logging.INFO))
    assert f.due() == []  # the window is not over yet
    clock.now += 61
    (summary,) = f.due()
    assert summary.getMessage() == "short id 2583 is ambiguous (repeated 500 more times in 61 s)"
    assert f.filter(summary)
    assert f.due() == []


def test_the_first_line_after_the_window_carries_the_count():
    clock = Clock()
    f = logs.RepeatFilter(clock)
    f.filter(record("pack x is damaged"))
    for _ in range(3):
        f.filter(record("pack x is damaged"))
    clock.now += 60
    r = record("pack x is damaged")
    assert f.filter(r)
    assert r.getMessage() == "pack x is damaged (and 3 more times before this)"


def test_many_different_warnings_are_capped_per_window():
    clock = Clock()
    f = logs.RepeatFilter(clock)
    passed = sum(f.filter(record(f"name {i} is ambiguous")) for i in range(5000))
    assert passed == logs.RepeatFilter.NEW_CAUSES_PER_WINDOW
    (summary,) = f.due(everything=True)
    assert summary.getMessage() == "4900 more warnings held back (over 100 different warnings in 60 s)"
    clock.now += 60
    assert f.filter(record("name 99999 is ambiguous"))


def test_a_lookup_loop_writes_one_line_then_a_count(fixture_repo, mount):
    """issue 11: one ambiguous name looked up in a loop wrote 30,000 WARNING lines in 5 s."""
    repo = fixture_repo("ambiguous")
    prefix = min(colliding_prefixes(repo.git.ids(), 4))
    m = mount(repo.path)
    lookups = 2000
    path = m.path / prefix[:2] / prefix[2:]
    for _ in range(lookups):
        with pytest.raises(OSError):
            os.stat(path)
    m.unmount()
    lines = [line for line in m.log().splitlines() if f"short id {prefix} is ambiguous" in line]
    assert len(lines) == 2, lines
    assert "repeated" not in lines[0]
    count = int(lines[1].split("(repeated ", 1)[1].split()[0])
    assert lookups - 1 <= count <= 2 * lookups
