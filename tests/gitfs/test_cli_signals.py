"""Signals: every one that would end the mount process unmounts cleanly or is ignored, no helper
process is left behind, and after SIGKILL the documented recovery works."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from cli_checks import children_of, force_unmount, mount_status, ps_lines, running
from gitfs.fuse import daemon
from mounting import ENV, gitfs_argv, mounted, run_gitfs, wait_until


# Helper processes are not the default where odb reads in C; these tests ask for them, so that
# every process a mount may have is seen to go.
WITH_HELPERS = {"GITFS_HELPERS": "1"}


def detached_mount(repo: Path, mnt: Path, log: Path, env: dict | None = None) -> tuple[int, list[int]]:
    """(the mount process, its helper processes), once live."""
    mnt.mkdir()
    done = run_gitfs("mount", "--log-file", str(log), str(repo), str(mnt), env={**WITH_HELPERS, **(env or {})})
    assert done.returncode == 0, done.stderr
    pid = mount_status(mnt)["pid"]
    assert wait_until(lambda: len(children_of(pid)) == daemon.HELPERS), ps_lines(children_of(pid))
    helpers = children_of(pid)
    return pid, helpers


def serves(mnt: Path) -> bool:
    bucket = sorted(os.listdir(mnt))[0]
    return bool(os.listdir(mnt / bucket))


def all_gone(pids) -> bool:
    return not any(running(p) for p in pids)


def test_every_other_terminating_signal_is_ignored_and_logged(fixture_repo, fuse_available, tmp_path):
    """SIGHUP, SIGUSR1/2, SIGALRM, the real-time signals and the rest of signal(7)'s Term/Core
    signals that a program may catch: the mount stays up and serving, its helpers too."""
    mnt, log = tmp_path / "mnt", tmp_path / "log"
    pid, helpers = detached_mount(fixture_repo("bare").path, mnt, log)
    try:
        for signum in sorted(daemon.IGNORED_SIGNALS | {signal.SIGPIPE, signal.SIGXFSZ}):
            os.kill(pid, signum)
        # The signals are handled in the loop; one more request after them proves it still runs.
        assert wait_until(lambda: log.read_text().count("ignored") >= len(daemon.IGNORED_SIGNALS), 10), log.read_text()
        assert serves(mnt)
        assert running(pid) and not all_gone(helpers) and all(running(h) for h in helpers), ps_lines(helpers)
        text = log.read_text()
        assert "SIGHUP ignored: there is nothing to reload" in text
        for name in ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGRTMIN+3", "SIGTSTP", "SIGXCPU"):
            assert f"{name} ignored (SIGINT, SIGTERM or SIGQUIT unmounts)" in text
        os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: not mounted(mnt) and all_gone([pid, *helpers]), 20), ps_lines([pid, *helpers])
        assert "Traceback" not in log.read_text()
    finally:
        force_unmount(mnt)


@pytest.mark.parametrize("signum, threads", [*((s, "0") for s in sorted(daemon.STOP_SIGNALS)),
                                             (signal.SIGTERM, "2")])
def test_stop_signals_unmount_and_leave_no_process(fixture_repo, fuse_available, tmp_path, signum, threads):
    """Request threads (GITFS_REQUEST_THREADS) are stopped and joined as well."""
    mnt, log = tmp_path / "mnt", tmp_path / "log"
    pid, helpers = detached_mount(fixture_repo("bare").path, mnt, log, env={"GITFS_REQUEST_THREADS": threads})
    try:
        assert serves(mnt)
        oid = sorted(os.listdir(mnt / "00"))[0] if (mnt / "00").exists() else None
        if oid is not None:
            (mnt / "00" / oid).read_bytes()
        os.kill(pid, signum)
        assert wait_until(lambda: not mounted(mnt), 20)
        assert wait_until(lambda: all_gone([pid, *helpers]), 20), ps_lines([pid, *helpers])
        text = log.read_text()
        assert f"{signal.Signals(signum).name}: unmounting" in text and f"unmounted {mnt}" in text
        assert "Traceback" not in text
    finally:
        force_unmount(mnt)


def test_signals_to_the_whole_group_of_a_foreground_mount(fixture_repo, fuse_available, tmp_path):
    """A terminal's SIGHUP, SIGTSTP or Ctrl-C reach every process of the group, helpers included:
    the first two change nothing, Ctrl-C unmounts, and nobody is left behind."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(gitfs_argv("mount", "-f", "--log-file", str(tmp_path / "log"),
                                       str(fixture_repo("bare").path), str(mnt)),
                            env=dict(ENV, **WITH_HELPERS), stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: mounted(mnt), 20)
        # The helpers may start a moment after the mount is live (on a loaded machine, later).
        assert wait_until(lambda: len(children_of(proc.pid)) == daemon.HELPERS, 20), ps_lines(children_of(proc.pid))
        helpers = children_of(proc.pid)
        for signum in (signal.SIGHUP, signal.SIGTSTP, signal.SIGUSR1):
            os.killpg(proc.pid, signum)
        assert serves(mnt) and proc.poll() is None and all(running(h) for h in helpers), ps_lines(helpers)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(20) == 0
        assert not mounted(mnt)
        assert wait_until(lambda: all_gone(helpers), 10), ps_lines(helpers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_unmount(mnt)


def test_after_sigkill_the_documented_recovery_works(fixture_repo, fuse_available, tmp_path):
    """The helpers exit with the mount process; the dead mount answers ENOTCONN; status calls it
    dead; `gitfs umount` removes it; and the same mount point mounts again."""
    repo = fixture_repo("bare").path
    mnt, log = tmp_path / "mnt", tmp_path / "log"
    pid, helpers = detached_mount(repo, mnt, log)
    try:
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: all_gone([pid, *helpers]), 20), ps_lines([pid, *helpers])
        with pytest.raises(OSError) as e:
            os.listdir(mnt)
        assert e.value.errno == errno.ENOTCONN
        assert mounted(mnt)
        assert "dead" in run_gitfs("status", str(mnt)).stdout
        done = run_gitfs("umount", str(mnt))
        assert (done.returncode, done.stderr) == (0, "")
        assert not mounted(mnt)
        done = run_gitfs("mount", "--log-file", str(log), str(repo), str(mnt))
        assert done.returncode == 0, done.stderr
        assert serves(mnt)
        assert run_gitfs("umount", str(mnt)).returncode == 0
    finally:
        force_unmount(mnt)


def test_fusermount3_also_recovers_a_killed_mount(fixture_repo, fuse_available, tmp_path):
    mnt, log = tmp_path / "mnt", tmp_path / "log"
    pid, helpers = detached_mount(fixture_repo("bare").path, mnt, log)
    try:
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: all_gone([pid, *helpers]), 20)
        assert subprocess.run(["fusermount3", "-u", str(mnt)]).returncode == 0
        assert not mounted(mnt)
    finally:
        force_unmount(mnt)
