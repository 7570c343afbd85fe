"""The user-facing scripts: bootstrap is quiet when done, the demo runs end to end and cleans up,
and racing fixture builds both succeed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import Git

ROOT = Path(__file__).resolve().parent.parent


def mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mounts", errors="surrogateescape") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(prefix)]


def test_bootstrap_is_quiet_when_there_is_nothing_to_do():
    first = subprocess.run([ROOT / "scripts" / "bootstrap"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, cwd="/")
    assert first.returncode == 0, first.stderr
    again = subprocess.run([ROOT / "scripts" / "bootstrap"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, cwd="/")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    if os.path.exists("/dev/fuse"):
        assert again.stderr == ""


def test_man_gitfs_works_after_bootstrap_without_the_venv_on_path():
    """The editable install leaves the page in the checkout; bootstrap links it where man looks
    (as root /usr/local/share/man, which man-db always searches). Another checkout's link counts."""
    if os.geteuid() != 0:
        pytest.skip("as another user the page goes to ~/.local/share/man, found with ~/.local/bin on PATH")
    done = subprocess.run([ROOT / "scripts" / "bootstrap"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    where = subprocess.run(["man", "-w", "gitfs"], capture_output=True, text=True, env=env, cwd="/")
    assert where.returncode == 0, where.stderr
    assert os.path.realpath(where.stdout.strip()).endswith("/docs/gitfs.1")


def test_demo_end_to_end(fuse_available, demo_repo, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([ROOT / "scripts" / "demo", str(demo_repo.path)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    head = demo_repo.git.rev_parse("HEAD")
    _, commit = demo_repo.git.read(head)
    assert commit.decode() in out.stdout
    for expected in ("$ gitfs mount", 'user.git.type="blob"', "user.git.delta_base=", "$ grep -rl TODO",
                     "$ gitfs umount"):
        assert expected in out.stdout, expected
    assert f"{len(demo_repo.git.ids())}\n" in out.stdout  # find -type f | wc -l
    assert mounts_under(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == [], "the demo left its mount point behind"


def test_demo_keep_leaves_the_mount_up(fuse_available, demo_repo, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([ROOT / "scripts" / "demo", "--keep", str(demo_repo.path)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, env=env, timeout=300)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        (mnt,) = mounts_under(str(tmp_path))
        assert sorted(os.listdir(mnt)) == sorted({oid[:2] for oid in demo_repo.git.ids()})
        # The command it prints unmounts and leaves nothing behind.
        command = out.stdout.rstrip("\n").splitlines()[-1].strip()
        assert command == f"{ROOT}/.venv/bin/gitfs umount {mnt} && rmdir {mnt}"
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        for mnt in mounts_under(str(tmp_path)):
            subprocess.run([ROOT / ".venv" / "bin" / "gitfs", "umount", mnt], check=False)
    assert mounts_under(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == [], "the demo's mount point is left behind"


def test_demo_greps_one_bucket_of_a_large_repository(fuse_available, demo_repo, tmp_path):
    """Past GITFS_DEMO_GREP_OBJECTS objects (20,000 by default) a grep of every object would run
    for minutes without a word: the demo greps one bucket and says why."""
    env = dict(os.environ, TMPDIR=str(tmp_path), GITFS_DEMO_GREP_OBJECTS="10")
    out = subprocess.run([ROOT / "scripts" / "demo", str(demo_repo.path)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"has \d+ objects, which grep -r \S+ would read for minutes", out.stdout), out.stdout
    first = min(oid[:2] for oid in demo_repo.git.ids())
    assert f"/{first} | wc -l" in out.stdout
    in_bucket = sum(oid.startswith(first) for oid in demo_repo.git.ids())
    assert f"\n{in_bucket}\n" in out.stdout  # find MNT/BUCKET -type f | wc -l
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_missing_repository(tmp_path):
    out = subprocess.run([ROOT / "scripts" / "demo", str(tmp_path / "nope")], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "does not exist" in out.stderr


def test_racing_demo_builds_both_succeed(tmp_path):
    dest = tmp_path / "demo.git"
    cmd = [sys.executable, str(ROOT / "scripts" / "make_fixtures.py"), "--demo", str(dest)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for stdout, stderr, rc in results:
        assert rc == 0, stderr.decode()
        assert stdout.decode().strip() == str(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.git"], "temporary build left behind"
    git = Git(dest)
    assert git.run("fsck", "--no-dangling") == ""
    assert (dest / "objects" / "pack" / "multi-pack-index").exists()
