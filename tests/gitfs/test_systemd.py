"""systemd's readiness protocol: READY=1 on $NOTIFY_SOCKET once the mount is live, on a socket
the test owns (a path, and an abstract one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from cli_checks import force_unmount, mount_status
from gitfs.cli import systemd
from mounting import ENV, gitfs_argv, mounted, run_gitfs, unmount, wait_until


@pytest.fixture
def notify_socket(tmp_path):
    """(the address for $NOTIFY_SOCKET, the bound socket), for a path and an abstract name."""
    def make(abstract: bool):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"gitfs-test-{os.getpid()}-{id(s)}"
            s.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            s.bind(address)
        s.settimeout(20)
        made.append(s)
        return address, s

    made = []
    yield make
    for s in made:
        s.close()


def test_a_foreground_mount_says_ready_once_live_and_stopping_at_the_end(fixture_repo, fuse_available, tmp_path,
                                                                      notify_socket):
    address, server = notify_socket(abstract=False)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(gitfs_argv("mount", "-f", "--log-file", str(tmp_path / "log"),
                                       str(fixture_repo("bare").path), str(mnt)),
                            env=dict(ENV, NOTIFY_SOCKET=address), stdin=subprocess.DEVNULL)
    try:
        assert server.recv(4096) == b"READY=1"
        assert mounted(mnt), "READY=1 came before the mount was live"
        assert os.listdir(mnt)
        proc.send_signal(signal.SIGTERM)
        assert server.recv(4096) == b"STOPPING=1"
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_unmount(mnt)


def test_a_detached_mount_hands_systemd_its_main_pid(fixture_repo, fuse_available, tmp_path, notify_socket):
    """Type=notify with a detaching command: the command reports the mount process as MAINPID."""
    address, server = notify_socket(abstract=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(gitfs_argv("mount", "--log-file", str(tmp_path / "log"), str(fixture_repo("bare").path),
                                     str(mnt)), env=dict(ENV, NOTIFY_SOCKET=address), capture_output=True,
                          text=True, timeout=30)
    try:
        assert done.returncode == 0, done.stderr
        message = server.recv(4096).decode()
        assert message == f"MAINPID={mount_status(mnt)['pid']}\nREADY=1"
    finally:
        unmount(mnt)
        force_unmount(mnt)
    assert wait_until(lambda: not mounted(mnt))


def test_notify_without_a_socket_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.notify("READY=1") is False


def test_an_unreachable_socket_is_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.notify("READY=1") is False
