"""What the kernel asks of a real mount, and what the mount puts in its page cache.

The mount counts the requests it gets by kind (user.gitfs.status); these tests hold it to the
protocol the serving layer is built around: no OPEN, RELEASE or FLUSH per file, bytes pushed into
the page cache that are exactly git's, helpers that may stop or die without a reader noticing,
and memory bounded by --cache-size whatever is open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_checks import running
from mounting import git_for

PER_FILE_LIMIT = 1.1  # kernel requests per object file during a grep of a fresh mount


def status(m) -> dict:
    return json.loads(os.getxattr(m.path, "user.gitfs.status"))


def object_files(m) -> list[Path]:
    return [m.path / b / name for b in sorted(os.listdir(m.path)) for name in sorted(os.listdir(m.path / b))]


def grep_all(m, timeout: float = 120) -> None:
    subprocess.run(["grep", "-r", "-q", "pattern that is in no object", str(m.path)], timeout=timeout)


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0



def test_a_grep_costs_about_one_request_per_file_and_pushes_git_s_bytes(fixtures_root, mount):
    repo = fixtures_root / "ambiguous"
    git = git_for(repo)
    m = mount(repo)
    assert status(m)["features"]["no_open"], "these tests need the patched pyfuse3 (scripts/bootstrap builds it)"
    before = status(m)["requests"]
    grep_all(m)
    after = status(m)
    requests = {k: v - before.get(k, 0) for k, v in after["requests"].items() if k != "loads_waited"}
    files = len(git.objects())
    # One OPEN for the whole mount (it answers ENOSYS), then none; no RELEASE, at most one FLUSH.
    assert requests.get("open", 0) <= 1 and requests.get("release", 0) == 0 and requests.get("flush", 0) <= 1, requests
    assert sum(requests.values()) <= PER_FILE_LIMIT * files, (requests, files)
    assert after["read_ahead"].get("pushed by helpers", 0) + after["read_ahead"].get("pushed", 0) > files // 4
    # Everything read again is git's, byte for byte, and comes from the page cache: most of it
    # is what read-ahead pushed there, and the kernel asks (almost) nothing.
    reads = after["requests"].get("read", 0)
    contents = {oid: data for oid, _, data in git.contents(sorted(git.objects()))}
    for path in object_files(m):
        assert path.read_bytes() == contents[path.parent.name + path.name], path
    assert status(m)["requests"].get("read", 0) - reads <= files // 100 + 2


def test_without_no_open_files_are_opened_the_ordinary_way(fixtures_root, mount):
    repo = fixtures_root / "midx"
    git = git_for(repo)
    m = mount(repo, env={"GITFS_PLAIN_OPEN": "1"})
    contents = {oid: data for oid, _, data in git.contents(sorted(git.objects()))}
    for path in object_files(m):
        assert path.read_bytes() == contents[path.parent.name + path.name], path
    requests = status(m)["requests"]
    assert requests["open"] >= len(contents) and requests.get("release", 0) >= len(contents) - 5
    assert "files are opened the ordinary way" in m.log()


@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL])
def test_reads_complete_when_a_helper_stops_or_dies(fixtures_root, mount, how):
    repo = fixtures_root / "ambiguous"
    git = git_for(repo)
    m = mount(repo, env={"GITFS_HELPERS": "1"})  # not the default where odb reads in C
    deadline = time.monotonic() + 20
    while len(status(m)["helpers"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim = status(m)["helpers"][0]
    os.kill(victim, how)
    t = time.monotonic()
    contents = {oid: data for oid, _, data in git.contents(sorted(git.objects()))}
    for path in object_files(m):
        assert path.read_bytes() == contents[path.parent.name + path.name], path
    assert time.monotonic() - t < 60
    assert not running(victim)  # killed and reaped, not left stopped or as a zombie
    assert status(m)["workers"]["helpers-replaced"] >= 1
    assert "replacing it" in m.log()


@pytest.fixture(scope="module")
def big_blobs_repo(tmp_path_factory):
    """300 distinct 512 KiB blobs (compressible, so the pack stays small), in the one pack that
    fast-import writes (a repack would drop them: nothing refers to them)."""
    from make_fixtures import Repo

    path = tmp_path_factory.mktemp("big") / "blobs.git"
    repo = Repo(path, bare=True)
    stream = bytearray()
    for k in range(300):
        data = (b"%06d " % k) * (512 * 1024 // 7) + b"\n"
        stream += b"blob\ndata %d\n" % len(data) + data + b"\n"
    repo.git("fast-import", "--quiet", input=bytes(stream))
    return path


@pytest.mark.parametrize("plain_open", [False, True])
def test_memory_is_bounded_by_the_cache_size_whatever_is_open(big_blobs_repo, mount, plain_open):
    m = mount(big_blobs_repo, "--cache-size", "16M", env={"GITFS_PLAIN_OPEN": "1"} if plain_open else None)
    daemon = status(m)["pid"]
    base = rss(daemon)
    files = [open(p, "rb") for p in object_files(m)]
    try:
        assert len(files) == 300
        for f in files:
            assert len(f.read()) == 512 * 1024 // 7 * 7 + 1
        # 150 MiB was read and every file is still open: what the daemon holds is bounded by
        # its cache (16 MiB) and what it always has, not by what is open.
        assert status(m)["cache"]["bytes"] <= 16 << 20
        assert rss(daemon) - base < (16 << 20) + (48 << 20), (base, rss(daemon))
    finally:
        for f in files:
            f.close()


def test_ls_l_asks_attributes_once_per_filesystem_not_per_entry(fixtures_root, mount):
    """ls -l asks security.selinux and system.posix_acl_access of each entry unless the
    filesystem says it has none of that kind (ENOTSUP), which ls remembers per device."""
    repo = fixtures_root / "ambiguous"
    git = git_for(repo)
    m = mount(repo)
    before = status(m)["requests"].get("getxattr", 0)
    out = subprocess.run(["ls", "-lR", str(m.path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("-r")]
    assert len(lines) == len(git.objects())
    assert status(m)["requests"].get("getxattr", 0) - before <= 4
    # The attributes of user.* are still there.
    oid = sorted(git.objects())[0]
    assert os.getxattr(m.path / oid[:2] / oid[2:], "user.git.type").decode() == git.objects()[oid][0]


def test_a_hung_mount_is_aborted_and_its_readers_set_free(fixtures_root, mount):
    """What the suite does with a mount that hangs (tests/gitfs/conftest.py's deadline, and an
    unmount that does not return): it aborts that connection alone, and every process blocked
    on it gets an error (ECONNABORTED for a request in flight) instead of waiting forever."""
    from mounting import abort_connection, connection_of, mounted

    repo = fixtures_root / "midx"
    m = mount(repo)
    other = mount(repo)
    oid = sorted(git_for(repo).objects())[0]
    daemon = status(m)["pid"]
    os.kill(daemon, signal.SIGSTOP)  # the mount now answers nothing
    try:
        reader = subprocess.Popen(["cat", str(m.path / oid[:2] / oid[2:])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            reader.wait(timeout=1)  # blocked on the stopped daemon
        assert connection_of(m.path) != connection_of(other.path)
        assert abort_connection(m.path)
        assert reader.wait(timeout=10) != 0
        error = reader.stderr.read()
        assert "connection abort" in error or "not connected" in error, error  # ECONNABORTED, ENOTCONN
        assert not mounted(m.path)
        assert status(other)["pid"] != daemon  # the other mount is untouched and still answers
    finally:
        os.kill(daemon, signal.SIGCONT)
        os.kill(daemon, signal.SIGTERM)
