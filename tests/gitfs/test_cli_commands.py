"""The commands besides mount: unknown ones, umount, status (list) and resolve, against real mounts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import odb
from cli_checks import force_unmount, mount_status, one_line_error, running
from gitfs.cli import main as cli
from gitfs.cli import mountinfo
from gitfs.cli import preflight
from gitfs.cli import probe
from gitfs.cli import unmount
from mounting import mounted, run_gitfs, wait_until
from oracle import Git, git_env

# -- which command ----------------------------------------------------------------------------


@pytest.mark.parametrize("typed,meant", [("unmount", "umount"), ("stauts", "status"), ("mout", "mount"),
                                         ("resolv", "resolve"), ("lsit", "list")])
def test_a_mistyped_command_names_the_closest(typed, meant, tmp_path):
    line = one_line_error(run_gitfs(typed, str(tmp_path)), code=2)
    assert line == f"gitfs: unknown command '{typed}' (did you mean '{meant}'?)"


def test_an_unknown_command_lists_the_commands():
    line = one_line_error(run_gitfs("frobnicate"), code=2)
    assert line == "gitfs: unknown command 'frobnicate' (commands: mount, umount, status, list, resolve)"


def test_no_command_is_a_usage_error():
    line = one_line_error(run_gitfs(), code=2)
    assert "a command is required" in line


@pytest.mark.parametrize("argv,expected", [
    (["/srv/r.git", "/mnt/o"], ["mount", "/srv/r.git", "/mnt/o"]),
    (["/srv/r.git", "/mnt/o", "-o", "ro,allow_other"], ["mount", "/srv/r.git", "/mnt/o", "-o", "ro,allow_other"]),
    (["/srv/r.git", "/mnt/o", "-oro", "-o", "dev"], ["mount", "/srv/r.git", "/mnt/o", "-oro", "-o", "dev"]),
    (["status"], ["status"]),
    (["--version"], ["--version"]),
])
def test_mount_is_implied_only_for_the_mount_helper_shape(argv, expected):
    assert cli.with_command(argv, cli.command_names(cli.build_parser())) == expected


@pytest.mark.parametrize("argv", [["unmount", "/mnt/o"], ["/srv/r.git"], ["/srv/r.git", "/mnt/o", "-f"],
                                  ["/srv/r.git", "/mnt/o", "--cache-size", "1G"], ["/srv/r.git", "-o", "ro"]])
def test_other_shapes_are_unknown_commands(argv):
    with pytest.raises(cli.ArgumentError, match="unknown command"):
        cli.with_command(argv, cli.command_names(cli.build_parser()))


@pytest.mark.parametrize("args", [
    ["mount", "--cache-size", "inf", "R", "M"], ["mount", "--cache-size", "-inf", "R", "M"],
    ["mount", "--cache-size", "1e400", "R", "M"], ["mount", "--cache-size", "0.5", "R", "M"],
    ["mount", "--cache-size", "nan", "R", "M"], ["mount", "--cache-size", "12K", "R", "M"],
    ["mount", "R"], ["mount", "--no-such-option", "R", "M"], ["umount"], ["resolve"],
    ["status", "--bogus"],
])
def test_argument_errors_are_one_line_with_exit_2(args):
    line = one_line_error(run_gitfs(*args), code=2)
    assert "--help" in line


# -- umount -----------------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    path = tmp_path / "tmpfs"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "gitfs-test", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=False)


def test_umount_refuses_what_is_not_gitfs(fuse_available, tmpfs):
    line = one_line_error(run_gitfs("umount", str(tmpfs)), code=1)
    assert line == f"gitfs: cannot unmount {tmpfs}: not a gitfs mount (tmpfs); gitfs unmounts only its own mounts"
    assert mounted(tmpfs)


def test_umount_of_a_path_inside_a_mount_says_which_mount(fixture_repo, mount):
    m = mount(fixture_repo("bare").path)
    bucket = m.path / sorted(os.listdir(m.path))[0]
    line = one_line_error(run_gitfs("umount", str(bucket)), code=1)
    assert line == f"gitfs: cannot unmount {bucket}: not mounted (it is inside the gitfs mount {m.path})"
    assert mounted(m.path)


def test_umount_takes_several_mount_points_and_reports_each_failure(fixture_repo, mount, tmp_path):
    first, second = mount(fixture_repo("bare").path), mount(fixture_repo("loose").path)
    done = run_gitfs("umount", str(first.path), str(tmp_path / "nowhere"), str(second.path))
    assert done.returncode == 1
    assert done.stderr == f"gitfs: cannot unmount {tmp_path / 'nowhere'}: no such file or directory\n"
    assert wait_until(lambda: not mounted(first.path) and not mounted(second.path))


def test_umount_of_a_busy_mount_counts_its_users_and_z_detaches_it(fixture_repo, mount):
    m = mount(fixture_repo("bare").path)
    bucket = m.path / sorted(os.listdir(m.path))[0]
    user = subprocess.Popen(["sleep", "60"], cwd=bucket)
    try:
        line = one_line_error(run_gitfs("umount", str(m.path)), code=1)
        assert line.startswith(f"gitfs: cannot unmount {m.path}: busy, used by 1 process (sleep {user.pid})")
        assert line.endswith(f"gitfs umount -z {m.path}")
        assert mounted(m.path)
        daemon = mount_status(m.path)["pid"]
        done = run_gitfs("umount", "-z", str(m.path))
        assert done.returncode == 0 and done.stderr == ""
        assert not mounted(m.path)
        assert running(daemon), "the lazily detached mount still serves its user"
    finally:
        user.kill()
        user.wait()
    assert wait_until(lambda: not running(daemon), 20), "the mount process outlived its last user"


def test_users_are_found_by_their_directory_files_and_maps(tmp_path):
    (tmp_path / "held").write_bytes(b"x" * 4096)
    by_cwd = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    by_fd = subprocess.Popen(["sh", "-c", f"exec 7<{tmp_path / 'held'}; exec sleep 60"], cwd="/")
    by_map = subprocess.Popen(["python3", "-c", "import mmap, sys, time; f = open(sys.argv[1], 'rb'); "
                               "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); f.close(); time.sleep(60)",
                               str(tmp_path / "held")], cwd="/")
    elsewhere = subprocess.Popen(["sleep", "60"], cwd="/")
    try:
        assert wait_until(lambda: {by_cwd.pid, by_fd.pid, by_map.pid} <= set(unmount.users_of(str(tmp_path))))
        users = unmount.users_of(str(tmp_path))
        assert users[by_cwd.pid] == "sleep" and elsewhere.pid not in users
        assert os.getpid() not in users
    finally:
        for p in (by_cwd, by_fd, by_map, elsewhere):
            p.kill()
            p.wait()
    assert unmount.describe_users({}).startswith("though no process")
    assert unmount.describe_users({5: "less", 3: "bash"}) == "used by 2 processes (bash 3, less 5)"


# -- status -----------------------------------------------------------------------------------


def status_rows(done) -> list[list[str]]:
    lines = done.stdout.splitlines()
    assert lines[0].split() == list(probe.COLUMNS)
    return [re.split(r"\s{2,}", line) for line in lines[1:]]


def test_status_lists_each_mount_with_its_facts(fixture_repo, mount):
    a, b = mount(fixture_repo("bare").path), mount(fixture_repo("loose").path, "--cache-size", "64M")
    some = a.path / sorted(os.listdir(a.path))[0]
    for name in os.listdir(some):
        (some / name).read_bytes()
    for command in ("status", "list"):
        done = run_gitfs(command)
        assert done.returncode == 0, done.stderr
        rows = {r[0]: r for r in status_rows(done)}
        for m, limit in ((a, "256M"), (b, "64M")):
            mountpoint, repository, pid, uptime, cache, health = rows[str(m.path)]
            assert repository == str(m.repo)
            assert int(pid) == mount_status(m.path)["pid"] and running(int(pid))
            assert re.fullmatch(r"\d+s|\d+m\d\ds", uptime)
            assert cache.endswith("/" + limit)
            assert health == "healthy"
    data = json.loads(run_gitfs("status", "--json", str(a.path)).stdout)
    assert [d["mountpoint"] for d in data] == [str(a.path)]
    assert data[0]["repository"] == str(a.repo) and data[0]["health"] == "healthy"
    assert data[0]["cache"]["limit"] == 256 << 20 and data[0]["cache"]["bytes"] >= 0
    assert data[0]["requests"]["open"] >= 1
    assert data[0]["features"]["gitfs"] == cli.__version__


def test_status_of_a_path_that_is_no_gitfs_mount(fuse_available, tmp_path):
    line = one_line_error(run_gitfs("status", str(tmp_path)), code=1)
    assert line == f"gitfs: {tmp_path}: not a gitfs mount"


def test_status_of_a_hung_mount_answers_within_its_deadline(fixture_repo, mount):
    m = mount(fixture_repo("bare").path)
    daemon = mount_status(m.path)["pid"]
    os.kill(daemon, signal.SIGSTOP)
    try:
        start = time.monotonic()
        done = run_gitfs("status", str(m.path), timeout=20)
        took = time.monotonic() - start
        assert done.returncode == 1
        (row,) = status_rows(done)
        assert row[1:] == [str(m.repo), "-", "-", "-", "not responding"]
        assert took < 5, f"status took {took:.1f} s on a hung mount"
    finally:
        os.kill(daemon, signal.SIGCONT)


def test_status_of_a_dead_mount_says_how_to_remove_it(fixture_repo, fuse_available, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    assert run_gitfs("mount", "--log-file", str(tmp_path / "log"), str(fixture_repo("bare").path),
                     str(mnt)).returncode == 0
    try:
        daemon = mount_status(mnt)["pid"]
        os.kill(daemon, signal.SIGKILL)
        assert wait_until(lambda: not running(daemon))
        done = run_gitfs("status", str(mnt))
        assert done.returncode == 1
        (row,) = status_rows(done)
        assert row[-1] == f"dead (run gitfs umount {mnt})"
        assert run_gitfs("umount", str(mnt)).returncode == 0
        assert not mounted(mnt)
    finally:
        force_unmount(mnt)


def test_a_mount_that_does_not_report_itself_shows_unknown_fields(monkeypatch, tmp_path):
    """An older gitfs has no user.gitfs.status: the mount answered, its facts are unknown."""
    def no_attribute(path, name):
        raise OSError(errno.ENODATA, "No data available")
    monkeypatch.setattr(os, "getxattr", no_attribute)
    assert probe._judge(probe._probe(str(tmp_path))) == ("healthy", {})
    row = probe.row(probe.MountStatus(mountinfo.Mount(1, 0, "/m", "fuse.gitfs", "/r"), "healthy", {}), 0)
    assert row == ("/m", "/r", "-", "-", "-", "healthy")
    monkeypatch.setattr(os, "getxattr", lambda path, name: b"not json")
    assert probe._judge(probe._probe(str(tmp_path))) == ("healthy", {})


def test_a_mount_this_user_may_not_enter_is_unknown_not_failed(monkeypatch, tmp_path):
    def refuse(path, name):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(os, "getxattr", refuse)
    health, facts = probe._judge(probe._probe(str(tmp_path)))
    assert (health, facts) == (probe.UNKNOWN, {})
    mount = mountinfo.Mount(1, 0, "/m", "fuse.gitfs", "/r")
    assert probe.fine([probe.MountStatus(mount, health, facts)])
    assert not probe.fine([probe.MountStatus(mount, "dead", {})])


@pytest.mark.parametrize("seconds,shown", [(0, "0s"), (59, "59s"), (61, "1m01s"), (3600, "1h00m"),
                                           (90061, "1d01h")])
def test_uptime(seconds, shown):
    assert probe.duration(seconds) == shown


@pytest.mark.parametrize("n,shown", [(0, "0"), (512 << 10, "512K"), (3 << 19, "1.5M"), (256 << 20, "256M"),
                                     (12 << 30, "12G")])
def test_sizes_as_shown(n, shown):
    assert probe.size(n) == shown


# -- resolve ----------------------------------------------------------------------------------


def _write(git: Git, kind: str, body: bytes) -> str:
    return git.run_bytes("hash-object", "-w", "--literally", "-t", kind, "--stdin", input=body).decode().strip()


def _colliding(kind: str, prefix: str, make) -> bytes:
    """The first body make(i) whose object id starts with prefix."""
    for i in range(2_000_000):
        body = make(i)
        if hashlib.sha1(b"%s %d\0" % (kind.encode(), len(body)) + body).hexdigest().startswith(prefix):
            return body
    raise AssertionError("no collision found")


@pytest.fixture(scope="module")
def ambiguous_repo(tmp_path_factory) -> tuple[Path, str]:
    """A repository where a commit, a tag, a tree and a blob share their first 4 hex digits."""
    path = tmp_path_factory.mktemp("resolve") / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=git_env())
    git = Git(path)
    blob = _write(git, "blob", b"hello\n")
    tree = _write(git, "tree", b"100644 hello\0" + bytes.fromhex(blob))
    commit_body = (f"tree {tree}\nauthor A U Thor <a@example.invalid> 1577923200 +0930\n"
                   "committer C O Mitter <c@example.invalid> 1577836800 +0000\n\n"
                   "First line\nof the subject\n\nbody\n").encode()
    commit = _write(git, "commit", commit_body)
    prefix = commit[:4]
    _write(git, "blob", _colliding("blob", prefix, lambda i: b"blob %d\n" % i))
    _write(git, "tree", _colliding("tree", prefix, lambda i: b"100644 f%d\0" % i + bytes.fromhex(blob)))
    _write(git, "tag", _colliding("tag", prefix, lambda i: (
        f"object {commit}\ntype commit\ntag v{i}\ntagger T <t@example.invalid> 1577836799 -0800\n\nv\n").encode()))
    _write(git, "commit", _colliding("commit", prefix, lambda i: commit_body.replace(b"body", b"body %d" % i)))
    return path, prefix


def git_candidates(repo: Path, prefix: str) -> list[str]:
    """git's own hint lines for an ambiguous name, without the "hint:   " in front."""
    done = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "-t", prefix], capture_output=True,
                          text=True, env=git_env())
    assert f"short object ID {prefix} is ambiguous" in done.stderr
    return [line.removeprefix("hint:").strip() for line in done.stderr.splitlines()
            if line.startswith("hint:  ")]


def test_resolve_lists_the_candidates_as_git_does(ambiguous_repo, mount):
    repo, prefix = ambiguous_repo
    m = mount(repo)
    for argv in ([f"{m.path}/{prefix[:2]}/{prefix[2:]}"], [str(m.path), prefix], [f"{m.path}/{prefix[:2]}", prefix[2:]]):
        done = run_gitfs("resolve", *argv)
        assert done.returncode == 1
        assert done.stderr == f"gitfs: short object ID {prefix} is ambiguous; the candidates are:\n"
        ours = done.stdout.splitlines()
        theirs = git_candidates(repo, prefix)
        assert len(ours) == len(theirs) == 5
        for line, hint in zip(ours, theirs):
            abbrev, _, rest = hint.partition(" ")
            assert line.startswith(abbrev) and line.partition(" ")[2] == rest, (line, hint)
        assert sorted(line.split()[0] for line in ours) == Git(repo).disambiguate(prefix)


def test_resolve_prints_the_full_id(fixture_repo, mount):
    repo = fixture_repo("bare")
    m = mount(repo.path)
    head = repo.git.rev_parse("HEAD")
    for argv in ([f"{m.path}/{head[:2]}/{head[2:9]}"], [str(m.path), head[:9]], [f"{m.path}/{head[:2]}/{head[2:]}"]):
        done = run_gitfs("resolve", *argv)
        assert (done.returncode, done.stdout, done.stderr) == (0, head + "\n", "")


def test_resolve_errors_are_one_line(fixture_repo, mount, tmp_path):
    m = mount(fixture_repo("bare").path)
    assert one_line_error(run_gitfs("resolve", str(tmp_path), "abcd")) == f"gitfs: {tmp_path} is not on a gitfs mount"
    assert "at least 4 hex digits" in one_line_error(run_gitfs("resolve", f"{m.path}/ab/c"))
    assert "hex digits only" in one_line_error(run_gitfs("resolve", f"{m.path}/ab", "xyz1"))
    assert "unknown revision xyz1" in one_line_error(run_gitfs("resolve", str(m.path), "xyz1"))
    assert "name an object" in one_line_error(run_gitfs("resolve", str(m.path)))
    missing = next(p for p in (f"{i:04x}" for i in range(65536)) if not fixture_repo("bare").git.disambiguate(p))
    assert one_line_error(run_gitfs("resolve", str(m.path), missing)) == \
        f"gitfs: no object {missing} in {fixture_repo('bare').path}"


def test_resolve_dates_and_subjects_as_git():
    from gitfs.cli import resolve
    assert resolve.short_date(b"A <a@x> 1577923200 +0930", own_zone=True) == "2020-01-02"
    assert resolve.short_date(b"A <a@x> 1577923200 -1200", own_zone=True) == "2020-01-01"
    assert resolve.short_date(b"A <a@x> 1577836799 -0800", own_zone=False) == "2019-12-31"
    assert resolve.short_date(b"broken", own_zone=True) == "1970-01-01"
    assert resolve.subject(b"\n\nOne\ntwo  \n\nthree\n") == "One two"
    assert resolve.describe("tag", b"object x\ntype commit\n\nno name\n") == "[bad tag, could not parse it]"


def test_access_denied_from_odb_is_one_line(monkeypatch):
    def refuse(path, **kw):
        raise odb.AccessDenied(f"{path}/objects/pack")
    monkeypatch.setattr(odb, "open", refuse)
    with pytest.raises(cli.UsageError, match=r"^/r/objects/pack: permission denied$"):
        preflight.open_store("/r", False)


def _busy_then_free(monkeypatch, busy_times: int, users: dict[int, str], daemons: bool) -> list[int]:
    """unmount() against a fake gitfs mount that is busy busy_times, held by users."""
    tried = []
    mount = mountinfo.Mount(1, 0, "/mnt/x", mountinfo.GITFS_TYPE, "/repo")
    monkeypatch.setattr(mountinfo, "mounts", lambda: [mount])
    monkeypatch.setattr(mountinfo, "mount_at", lambda path, table=None: mount)

    def run(mountpoint, lazy):
        tried.append(1)
        return "Device or resource busy" if len(tried) <= busy_times else None

    monkeypatch.setattr(unmount, "_run_unmount", run)
    monkeypatch.setattr(unmount, "users_of", lambda mountpoint: users)
    monkeypatch.setattr(unmount, "_serves_fuse", lambda pid: daemons)
    return tried


def test_umount_waits_out_the_mounts_own_listing(monkeypatch):
    """Busy only because FUSE daemons list through the mount (a walk's pass): asked again until free."""
    tried = _busy_then_free(monkeypatch, 3, {10: "gitfs"}, daemons=True)
    unmount.unmount("/mnt/x")
    assert len(tried) == 4


def test_umount_waits_out_the_listing_between_its_directories(monkeypatch):
    """Busy with no holder in sight: the pass is between two of its listings (a full run once
    caught it there, and the unmount failed)."""
    tried = _busy_then_free(monkeypatch, 3, {}, daemons=True)
    unmount.unmount("/mnt/x")
    assert len(tried) == 4


def test_umount_of_a_mount_held_out_of_sight_gives_up_after_a_while(monkeypatch):
    """Busy for longer than UNSEEN_WAIT with no holder this user can see: one line, as before."""
    monkeypatch.setattr(unmount, "UNSEEN_WAIT", 0.2)
    tried = _busy_then_free(monkeypatch, 10**6, {}, daemons=True)
    began = time.monotonic()
    with pytest.raises(unmount.UnmountError, match="busy, though no process visible to this user"):
        unmount.unmount("/mnt/x")
    assert 0.2 <= time.monotonic() - began < 2.0 and len(tried) > 1


def test_umount_of_a_mount_another_process_holds_fails_at_once(monkeypatch):
    tried = _busy_then_free(monkeypatch, 3, {11: "bash"}, daemons=False)
    with pytest.raises(unmount.UnmountError, match="busy, used by 1 process"):
        unmount.unmount("/mnt/x")
    assert len(tried) == 1
