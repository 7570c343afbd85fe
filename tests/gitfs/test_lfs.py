"""-o lfs: Git LFS pointers under .tree show their content, checked; the raw view stays raw."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from make_fixtures import LFS_CONTENT, lfs_pointer

LOGO = LFS_CONTENT["assets/logo.bin"]


def git_bytes(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def lfs_object(git_dir: Path, content: bytes) -> Path:
    oid = hashlib.sha256(content).hexdigest()
    return git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def test_pointers_show_their_content(fixtures_root, mount):
    repo = fixtures_root / "history"
    m = mount(repo, "-o", "lfs")
    assets = m.path / ".tree" / "main" / "assets"
    logo = assets / "logo.bin"
    assert os.stat(logo).st_size == len(LOGO)
    assert logo.read_bytes() == LOGO
    assert sorted(os.listdir(assets)) == ["logo.bin", "missing.bin", "readme.txt"]
    assert {e.name: e.stat().st_size for e in os.scandir(assets)}["logo.bin"] == len(LOGO)
    assert os.getxattr(logo, "user.git.lfs").startswith(b"content of sha256:" + hashlib.sha256(LOGO).hexdigest().encode())
    assert os.getxattr(logo, "user.git.type") == b"blob"  # the pointer's object
    missing = assets / "missing.bin"
    assert missing.read_bytes() == git_bytes(repo, "cat-file", "blob", "main:assets/missing.bin")
    assert b"not in the repository" in os.getxattr(missing, "user.git.lfs")
    readme = assets / "readme.txt"
    assert readme.read_bytes() == b"not an lfs file\n"
    with pytest.raises(OSError) as e:
        os.getxattr(readme, "user.git.lfs")
    assert e.value.errno == errno.ENODATA
    pointer = git_bytes(repo, "rev-parse", "main:assets/logo.bin").decode().strip()
    raw = m.path / pointer[:2] / pointer[2:]
    assert raw.read_bytes() == lfs_pointer(LOGO)  # the object view is always raw


def test_without_the_option_pointers_are_pointers(fixtures_root, mount):
    m = mount(fixtures_root / "history")
    logo = m.path / ".tree" / "main" / "assets" / "logo.bin"
    assert logo.read_bytes() == lfs_pointer(LOGO)
    with pytest.raises(OSError):
        os.getxattr(logo, "user.git.lfs")


def test_a_damaged_object_is_never_served(repo_copy, mount):
    repo = repo_copy("history")
    obj = lfs_object(repo.git_dir, LOGO)
    obj.chmod(0o644)
    obj.write_bytes(b"X" + LOGO[1:])  # same size, other bytes
    m = mount(repo.path, "-o", "lfs")
    logo = m.path / ".tree" / "main" / "assets" / "logo.bin"
    assert os.stat(logo).st_size == len(LOGO)
    with pytest.raises(OSError) as e:
        logo.read_bytes()
    assert e.value.errno == errno.EIO
    assert "sha256 differs" in m.log()


def test_a_short_object_leaves_the_pointer(repo_copy, mount):
    repo = repo_copy("history")
    obj = lfs_object(repo.git_dir, LOGO)
    obj.chmod(0o644)
    obj.write_bytes(LOGO[:100])
    m = mount(repo.path, "-o", "lfs")
    logo = m.path / ".tree" / "main" / "assets" / "logo.bin"
    assert logo.read_bytes() == lfs_pointer(LOGO)
    assert b"100 bytes, the pointer says 16384" in os.getxattr(logo, "user.git.lfs")


def test_a_file_whose_listing_was_let_go_still_shows_its_content(tmp_path, mount):
    """A file under .tree is rebuilt from its place in its tree once its directory's listing is
    let go (two wide trees listed push it out of an 8M --cache-size): an LFS file stays one."""
    repo = tmp_path / "lfs.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)

    def hash_object(data: bytes) -> str:
        return subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=data,
                              capture_output=True, check=True).stdout.decode().strip()

    def mktree(lines: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "mktree"], input=lines.encode(), capture_output=True,
                              check=True).stdout.decode().strip()

    obj = lfs_object(repo, LOGO)
    obj.parent.mkdir(parents=True)
    obj.write_bytes(LOGO)
    small = mktree(f"100644 blob {hash_object(lfs_pointer(LOGO))}\tlogo.bin\n")
    blob = hash_object(b"wide\n")
    wide = [mktree("".join(f"100644 blob {blob}\t{prefix}{i:05d}\n" for i in range(40_000))) for prefix in "ab"]
    m = mount(repo, "-o", "lfs", "--cache-size", "8M")
    with open(m.path / ".tree" / small / "logo.bin", "rb") as f:
        assert os.fstat(f.fileno()).st_size == len(LOGO)
        for tree in wide:
            assert len(os.listdir(m.path / ".tree" / tree)) == 40_000
        assert f.read() == LOGO


def test_what_git_lfs_writes(tmp_path, mount):
    if shutil.which("git-lfs") is None:
        # scripts/bootstrap installs it: under CI its absence is a failure, never a quiet skip.
        if os.environ.get("CI") == "true":
            pytest.fail("git-lfs is not installed (scripts/bootstrap installs it)")
        pytest.skip("git-lfs is not installed")
    repo = tmp_path / "lfs-repo"
    env = dict(os.environ, HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="C", GIT_COMMITTER_EMAIL="c@x",
               GIT_AUTHOR_DATE="@1577836800 +0000", GIT_COMMITTER_DATE="@1577836800 +0000")

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, check=True, text=True).stdout

    repo.mkdir()
    git("init", "-q", "-b", "main")
    git("lfs", "install", "--local")
    git("lfs", "track", "*.dat")
    big = bytes((i * 7919) % 251 for i in range(300_000))
    (repo / "big.dat").write_bytes(big)
    (repo / "small.txt").write_text("plain\n")
    git("add", "-A")
    git("commit", "-q", "-m", "lfs by git-lfs")
    assert git("cat-file", "blob", "HEAD:big.dat").startswith("version https://git-lfs.github.com/spec/v1\n")
    assert lfs_object(repo / ".git", big).is_file()  # where git-lfs put it
    m = mount(repo, "-o", "lfs")
    top = m.path / ".tree" / "HEAD"
    assert (top / "big.dat").read_bytes() == big and os.stat(top / "big.dat").st_size == len(big)
    assert (top / "small.txt").read_bytes() == b"plain\n"
