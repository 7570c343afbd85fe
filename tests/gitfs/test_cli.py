"""The gitfs command: help, version, one-line errors, detaching, signals, umount."""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gitfs
from gitfs.cli import main as cli
from gitfs import features
from gitfs.cli import preflight
from cli_checks import one_line_error
from mounting import ENV, gitfs_argv, mount_line, mounted, run_gitfs, unmount, wait_until


def test_version_and_help():
    done = run_gitfs("--version")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [f"gitfs {gitfs.__version__}", *features.describe()]
    done = run_gitfs("--help")
    assert done.returncode == 0
    for words in ("gitfs mount", "gitfs umount", "fstab", "getfattr"):
        assert words in done.stdout
    done = run_gitfs("mount", "--help")
    for option in ("--foreground", "--debug", "--log-file", "--cache-size", "--verify", "-o"):
        assert option in done.stdout


def test_python_dash_m_and_console_script_agree():
    script = Path(sys.executable).parent / "gitfs"
    if not script.exists():
        pytest.fail(f"no console script at {script}: is the project installed (scripts/bootstrap)?")
    for argv in (gitfs_argv("--version"), [str(script), "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=ENV)
        assert done.stdout.splitlines()[0] == f"gitfs {gitfs.__version__}"


@pytest.mark.parametrize("text,value", [("256M", 256 << 20), ("1G", 1 << 30), ("1048576", 1 << 20),
                                        ("4096KiB", 4 << 20), ("2m", 2 << 20), ("1GiB", 1 << 30)])
def test_parse_size(text, value):
    assert cli.parse_size(text) == value


@pytest.mark.parametrize("text", ["lots", "", "-1M", "12Q", "1.5M", "0.5", "inf", "-inf", "nan", "1e400",
                                  "1e3M", "0x100000", "1_000_000", "65536", "1023K", "256MB", "999999T"])
def test_parse_size_rejects(text):
    """Integers with a K/M/G/T suffix only (no floats, exponents, inf or nan), at least 1M, at most
    the machine's memory."""
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_size(text)


def test_not_a_repository(fuse_available, tmp_path):
    (tmp_path / "mnt").mkdir()
    line = one_line_error(run_gitfs("mount", str(tmp_path), str(tmp_path / "mnt")))
    assert "not a git repository" in line


def test_mountpoint_missing(fuse_available, fixture_repo, tmp_path):
    line = one_line_error(run_gitfs("mount", str(fixture_repo("bare").path), str(tmp_path / "nope")))
    assert "does not exist" in line


def test_mountpoint_not_a_directory(fuse_available, fixture_repo, tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_line_error(run_gitfs("mount", str(fixture_repo("bare").path), str(tmp_path / "file")))
    assert "not a directory" in line


def test_mountpoint_already_mounted(fixture_repo, mount):
    m = mount(fixture_repo("bare").path)
    line = one_line_error(run_gitfs("mount", str(fixture_repo("bare").path), str(m.path)))
    assert "already a mount point" in line


def test_bad_fuse_option_is_one_line(fuse_available, fixture_repo, tmp_path):
    (tmp_path / "mnt").mkdir()
    done = run_gitfs("mount", "-o", "no_such_option_x", str(fixture_repo("bare").path), str(tmp_path / "mnt"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "FUSE refused" in done.stderr
    assert not mounted(tmp_path / "mnt")


def test_missing_dev_fuse_is_reported(monkeypatch):
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == "/dev/fuse" else real_exists(p))
    with pytest.raises(cli.UsageError, match="/dev/fuse is missing"):
        preflight.check_fuse()


def test_missing_fusermount3_is_reported(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "access", lambda *a: True)
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    with pytest.raises(cli.UsageError, match="fusermount3 not found"):
        preflight.check_fuse()


def test_umount_of_something_not_mounted(fuse_available, tmp_path):
    line = one_line_error(run_gitfs("umount", str(tmp_path)))
    assert "cannot unmount" in line and line.endswith("not mounted")


def test_mount_detaches_and_releases_captured_output(fixture_repo, fuse_available, tmp_path):
    """A caller capturing output (like $(gitfs mount ...)) gets EOF once the mount is live."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    start = time.monotonic()
    done = subprocess.run(gitfs_argv("mount", str(fixture_repo("bare").path), str(mnt)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, env=ENV)
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"" and done.stderr == b""
        assert mounted(mnt)
        assert os.listdir(mnt)
        assert time.monotonic() - start < 10
    finally:
        assert run_gitfs("umount", str(mnt)).returncode == 0
    assert wait_until(lambda: not mounted(mnt))


def test_fstab_form_through_mount_fuse3(fixture_repo, fuse_available, tmp_path):
    """mount.fuse3 runs `gitfs REPO MOUNTPOINT -o OPTS`: that form mounts too."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = run_gitfs(str(fixture_repo("bare").path), str(mnt), "-o", "ro,nosuid,nodev")
    try:
        assert done.returncode == 0, done.stderr
        assert mounted(mnt)
    finally:
        unmount(mnt)
    assert wait_until(lambda: not mounted(mnt))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(fixture_repo, fuse_available, tmp_path, signum):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "gitfs.log"
    proc = subprocess.Popen(gitfs_argv("mount", "-f", "--log-file", str(log),
                                       str(fixture_repo("bare").path), str(mnt)), env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: mounted(mnt), 20), proc.stderr.read1() if proc.poll() is not None else ""
        some_bucket = sorted(os.listdir(mnt))[0]
        assert os.listdir(mnt / some_bucket)
        proc.send_signal(signum)
        assert proc.wait(20) == 0
        assert not mounted(mnt)
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)])


def test_unwritable_log_file_is_one_line_and_mounts_nothing(fuse_available, fixture_repo, tmp_path):
    (tmp_path / "mnt").mkdir()
    done = run_gitfs("mount", "--log-file", str(tmp_path / "no" / "such" / "dir.log"),
                     str(fixture_repo("bare").path), str(tmp_path / "mnt"))
    assert "cannot write the log file" in one_line_error(done)
    assert not mounted(tmp_path / "mnt")


def test_rw_is_said_to_be_ignored_in_one_line(fixture_repo, fuse_available, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = run_gitfs("mount", "--log-file", str(tmp_path / "log"), "-o", "rw", str(fixture_repo("bare").path), str(mnt))
    try:
        assert done.returncode == 0, done.stderr
        assert done.stderr == "gitfs: -o rw ignored: the mount is always read-only\n"
        assert "ro" in mount_line(mnt)[3].split(",")
    finally:
        unmount(mnt)


def test_an_option_libfuse_refuses_is_one_line_naming_it(fuse_available, fixture_repo, tmp_path):
    (tmp_path / "mnt").mkdir()
    done = run_gitfs("mount", "-o", "bogusopt", str(fixture_repo("bare").path), str(tmp_path / "mnt"))
    line = one_line_error(done, code=1)
    assert line.startswith(f"gitfs: FUSE refused to mount {tmp_path / 'mnt'}: ")
    assert "bogusopt" in line
    assert not mounted(tmp_path / "mnt")


def test_umount_of_a_path_that_does_not_exist(tmp_path):
    line = one_line_error(run_gitfs("umount", str(tmp_path / "no" / "such")), code=1)
    assert line == f"gitfs: cannot unmount {tmp_path / 'no' / 'such'}: no such file or directory"


def test_a_mount_says_where_it_is_on_a_terminal_only(fixture_repo, fuse_available, tmp_path):
    repo = str(fixture_repo("bare").path)
    log = tmp_path / "log"
    quiet, loud = tmp_path / "quiet", tmp_path / "loud"
    quiet.mkdir()
    loud.mkdir()
    try:
        done = run_gitfs("mount", "--log-file", str(log), repo, str(quiet))
        assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
        main, tty = pty.openpty()
        try:
            done = subprocess.run(gitfs_argv("mount", "--log-file", str(log), repo, str(loud)), stdout=tty,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV, timeout=60, text=True)
            assert done.returncode == 0, done.stderr
            os.close(tty)
            tty = -1
            said = b""
            while select.select([main], [], [], 5)[0]:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: every writer is gone
                    break
                if not chunk:
                    break
                said += chunk
        finally:
            if tty >= 0:
                os.close(tty)
            os.close(main)
        assert said.decode().replace("\r\n", "\n") == (
            f"gitfs: mounted {repo} on {loud} (log: {log}; unmount: gitfs umount {loud})\n")
    finally:
        for mnt in (quiet, loud):
            unmount(mnt)


def test_rw_with_a_refusal_is_still_one_line(fixture_repo, tmp_path):
    line = one_line_error(run_gitfs("mount", "-o", "rw", str(fixture_repo("bare").path), str(tmp_path / "none")),
                          code=1)
    assert line == f"gitfs: mountpoint {tmp_path / 'none'} does not exist"
