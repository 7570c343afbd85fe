"""What `gitfs mount` refuses before mounting, each in one line, and the shapes it accepts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cli_checks import NOBODY, force_unmount, mount_status, one_line_error, run_as, running
from gitfs.cli import mountinfo
from mounting import ENV, gitfs_argv, mounted, run_gitfs, unmount, wait_until
from oracle import git_env


def test_a_non_empty_mount_point_is_refused_unless_nonempty(fixture_repo, fuse_available, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "precious").write_text("mine")
    repo = str(fixture_repo("bare").path)
    line = one_line_error(run_gitfs("mount", repo, str(mnt)), code=1)
    assert line == (f"gitfs: mountpoint {mnt} is not empty (the mount would hide its files; "
                    "-o nonempty mounts over it anyway)")
    assert not mounted(mnt)
    done = run_gitfs("mount", "--log-file", str(tmp_path / "log"), "-o", "nonempty", repo, str(mnt))
    try:
        assert done.returncode == 0, done.stderr
        assert "precious" not in os.listdir(mnt)
    finally:
        unmount(mnt)
        force_unmount(mnt)
    assert (mnt / "precious").read_text() == "mine"


def _work_tree(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True, env=git_env())
    (work / "sub").mkdir()
    (work / "sub" / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True, env=git_env())
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "c"], check=True, env=git_env())
    return work


@pytest.mark.parametrize("where", ["objects", "objects/pack", "objects/info", "git dir", "above"])
def test_a_mount_point_the_mount_would_read_is_refused(repo_copy, fuse_available, tmp_path, where):
    """The mount would read itself: the first lookup would hang, and its readers with it."""
    repo = repo_copy("bare").path
    mnt = {"objects": repo / "objects", "objects/pack": repo / "objects" / "pack",
           "objects/info": repo / "objects" / "info", "git dir": repo, "above": repo.parent}[where]
    mnt.mkdir(exist_ok=True)
    done = run_gitfs("mount", "-o", "nonempty", str(repo), str(mnt), timeout=20)
    line = one_line_error(done, code=1)
    assert "which the mount reads (it would read itself)" in line
    assert not mounted(mnt)


def test_a_mount_point_in_an_alternate_is_refused(repo_copy, fuse_available):
    alt = repo_copy("alt-relative")
    base_objects = (alt.objects_dir / "info" / "alternates").read_text().strip()
    target = Path(os.path.normpath(alt.objects_dir / base_objects)) / "pack"
    line = one_line_error(run_gitfs("mount", "-o", "nonempty", str(alt.path), str(target), timeout=20), code=1)
    assert f"is inside {os.path.realpath(target.parent)}, which the mount reads" in line


def test_a_work_tree_refuses_its_own_dot_git_but_mounts_in_a_subdirectory(fuse_available, tmp_path):
    work = _work_tree(tmp_path)
    for mnt in (work, work / ".git", work / ".git" / "objects"):
        line = one_line_error(run_gitfs("mount", "-o", "nonempty", str(work), str(mnt), timeout=20), code=1)
        assert "it would read itself" in line
    empty = work / "empty"
    empty.mkdir()
    done = run_gitfs("mount", "--log-file", str(tmp_path / "log"), str(work), str(empty))
    try:
        assert done.returncode == 0, done.stderr
        assert os.listdir(empty)
    finally:
        unmount(empty)
        force_unmount(empty)


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_mount_point_on_a_dead_mount_gets_advice_that_works(fixture_repo, fuse_available, tmp_path, depth):
    repo = str(fixture_repo("bare").path)
    dead = tmp_path / "dead"
    dead.mkdir()
    assert run_gitfs("mount", "--log-file", str(tmp_path / "log"), repo, str(dead)).returncode == 0
    try:
        pid = mount_status(dead)["pid"]
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not running(pid))
        target = dead.joinpath(*["sub"] * depth)
        line = one_line_error(run_gitfs("mount", repo, str(target)), code=1)
        where = "is a dead FUSE mount" if depth == 0 else f"is inside the dead FUSE mount {dead}"
        assert line == f"gitfs: mountpoint {target} {where} (its process is gone); run: gitfs umount {dead}"
        advice = line.split("run: ", 1)[1].split()
        assert advice[:2] == ["gitfs", "umount"]
        done = run_gitfs(*advice[1:])
        assert (done.returncode, done.stderr) == (0, "")
        assert not mounted(dead)
    finally:
        force_unmount(dead)


def test_dead_foreign_fuse_mount_advice_names_fusermount3(monkeypatch):
    from gitfs.cli import preflight
    table = [mountinfo.Mount(1, 0, "/", "ext4", "/dev/sda"), mountinfo.Mount(2, 1, "/mnt/s", "fuse.sshfs", "h:/")]
    monkeypatch.setattr(mountinfo, "mounts", lambda: table)
    assert preflight.dead_mount_advice("/mnt/s/a/b") == ("mountpoint /mnt/s/a/b is inside the dead FUSE mount /mnt/s "
                                                   "(its process is gone); run: fusermount3 -u /mnt/s")


def test_debug_implies_foreground(fixture_repo, fuse_available, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(gitfs_argv("mount", "-d", str(fixture_repo("bare").path), str(mnt)), env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: mounted(mnt), 20)
        assert os.listdir(mnt)
        time.sleep(0.3)
        assert proc.poll() is None, "gitfs mount -d detached"
        assert mount_status(mnt)["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert b" DEBUG opendir(1" in err and b"Traceback" not in err
        assert out == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_unmount(mnt)


def test_fstab_only_options_are_not_passed_to_fuse(fixture_repo, fuse_available, tmp_path):
    """mount(8) may hand the helper noauto, _netdev, nofail, x-systemd.* and comment=: FUSE knows none."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = run_gitfs(str(fixture_repo("bare").path), str(mnt), "-o",
                     "ro,noauto,_netdev,nofail,x-systemd.automount,x-systemd.idle-timeout=60,comment=x,nosuid")
    try:
        assert done.returncode == 0, done.stderr
        assert mounted(mnt)
    finally:
        unmount(mnt)
        force_unmount(mnt)


@pytest.mark.parametrize("name", ["dépôt.git", "we,ird\\name with space.git", b"latin1-\xe9.git"])
def test_any_repository_path_mounts_and_reads_back_from_the_mount_table(fixture_repo, fuse_available, tmp_path, name):
    repo = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), os.fsencode(name))))
    shutil.copytree(fixture_repo("bare").path, repo)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = run_gitfs("mount", "--log-file", str(tmp_path / "log"), str(repo), str(mnt))
    try:
        assert done.returncode == 0, done.stderr
        (m,) = [m for m in mountinfo.gitfs_mounts() if m.mountpoint == str(mnt)]
        assert m.source == str(repo)
        head = fixture_repo("bare").git.rev_parse("HEAD")
        done = run_gitfs("resolve", str(mnt), head[:8])
        assert done.stdout.strip() == head, done.stderr
    finally:
        unmount(mnt)
        force_unmount(mnt)


# -- permissions (a second user: setpriv) --------------------------------------------------------


@pytest.fixture
def private_dir():
    """A directory every user can reach (pytest's own temporary tree is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="gitfs-permissions-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_unreadable_repository_is_permission_denied(fixture_repo, private_dir):
    repo = private_dir / "repo.git"
    shutil.copytree(fixture_repo("bare").path, repo)
    repo.chmod(0o700)
    mnt = private_dir / "mnt"
    mnt.mkdir(mode=0o777)
    mnt.chmod(0o777)
    line = one_line_error(run_as(NOBODY, "mount", str(repo), str(mnt)), code=1)
    assert line == f"gitfs: {repo}: permission denied"


def test_an_unreachable_or_unwritable_mount_point_is_permission_denied(fixture_repo, private_dir):
    repo = private_dir / "repo.git"
    shutil.copytree(fixture_repo("bare").path, repo)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    closed = private_dir / "closed"
    closed.mkdir()
    (closed / "mnt").mkdir()
    closed.chmod(0o700)
    line = one_line_error(run_as(NOBODY, "mount", str(repo), str(closed / "mnt")), code=1)
    assert line == f"gitfs: mountpoint {closed / 'mnt'}: permission denied"
    readonly = private_dir / "readonly"
    readonly.mkdir()
    readonly.chmod(0o755)
    line = one_line_error(run_as(NOBODY, "mount", str(repo), str(readonly)), code=1)
    assert line == f"gitfs: mountpoint {readonly}: permission denied (you need write access to it)"


def test_below_an_alternate_only_what_the_store_reads_is_refused(repo_copy, fuse_available, tmp_path):
    """git takes any directory as an alternate, "/" among them: a mount point below it that the
    store never reads (not pack/, info/ or a bucket) mounts."""
    repo = repo_copy("alt-relative")
    base = Path(os.path.realpath(repo.objects_dir / (repo.objects_dir / "info" / "alternates").read_text().strip()))
    for refused in (base / "pack" / "x", base / "info" / "x", base / "ab" / "x"):
        refused.mkdir(parents=True, exist_ok=True)
        assert "it would read itself" in one_line_error(run_gitfs("mount", str(repo.path), str(refused)), code=1)
    allowed = base / "not-read"
    allowed.mkdir()
    done = run_gitfs("mount", "--log-file", str(tmp_path / "log"), str(repo.path), str(allowed))
    try:
        assert done.returncode == 0, done.stderr
        assert os.listdir(allowed)
    finally:
        unmount(allowed)
        force_unmount(allowed)


@pytest.mark.parametrize("where", ["objects", "git dir"])
def test_a_refusal_no_option_lifts_comes_before_not_empty(repo_copy, tmp_path, where):
    """`not empty (-o nonempty mounts over it anyway)` would send the user to a second refusal."""
    repo = repo_copy("bare").path
    mnt = {"objects": repo / "objects", "git dir": repo}[where]
    line = one_line_error(run_gitfs("mount", str(repo), str(mnt), timeout=20), code=1)
    assert "which the mount reads (it would read itself)" in line
    assert "nonempty" not in line


def test_a_file_given_as_the_repository_is_named_as_such(tmp_path):
    not_a_repo = tmp_path / "notes.txt"
    not_a_repo.write_text("hello\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    line = one_line_error(run_gitfs("mount", str(not_a_repo), str(mnt)), code=1)
    assert line == (f"gitfs: {not_a_repo}: not a git repository but a file (give a repository, its .git or "
                    "objects directory, or a .git file)")
