"""scripts/bench: a quick run prints every row and exits 0; its checks against git catch a wrong
size or wrong bytes (exit 1); the floor's levers change what the kernel asks; the synthetic
repository is deterministic, built once and kept."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_cli  # noqa: E402
import bench_figures  # noqa: E402
import bench_synthetic  # noqa: E402
import bench_tree  # noqa: E402

QUICK_ROWS = [
    "(1) grep -r 00-03 (mount)", "(1) kernel requests per object file", "(2) find -size +1k (mount)",
    "floor, plain: grep -r 00-03", "floor, plain: requests per object file", "floor, levers: grep -r 00-03",
    "floor, levers: requests per object file", "floor, levers: grep again, same mount",
    "floor, plain: find -size +1k", "floor, levers: find -size +1k", "(3) mount to live", "(4) peak RSS (mount)",
    "(5) odb read 00-03", "(5) odb read_header all", "(5) odb.open", "(6) grep -r 00-03 again, same mount",
    "(7) ls -l 00-0f (mount)", "floor, levers: ls -l 00-0f", "(8) ", "(9) synthetic repository (2000 blobs)", "(9) mount to live, synthetic 2000",
    "(9) RSS after listing every bucket, synthetic 2000", "(9) RSS after 2 random reads, synthetic 2000",
    "(9) per ls -l entry, bare", "(9) per ls -l entry, synthetic 2000", "(9) per ls -l entry: synthetic 2000 / bare",
    "(9) per random read, bare", "(9) per random read, synthetic 2000", "(9) per random read: synthetic 2000 / bare",
]


def table_rows(out: str) -> dict[str, str]:
    """{figure: the rest of its line} of the printed table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    return {re.split(r"\s{2,}", line.strip())[0]: line for line in lines[start + 2:] if line.strip()}


def test_a_quick_run_prints_every_row(fuse_available, demo_repo, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([ROOT / "scripts" / "bench", str(demo_repo.path), "--repeat", "1", "--floor",
                          "--synthetic", "2000", "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = table_rows(out.stdout)
    for label in QUICK_ROWS:
        assert any(figure.startswith(label) for figure in rows), label
    assert not [line for line in rows.values() if " FAIL " in line]
    files = len([oid for oid in demo_repo.git.ids() if oid[:2] in ("00", "01", "02", "03")])
    # The floor counts what the kernel asks: one OPEN and one RELEASE per file when it opens
    # files, one OPEN per mount (answered ENOSYS) and no RELEASE with the levers.
    plain = rows["floor, plain: requests per object file"]
    assert f"for {files} files: open {files}, read " in plain and f"release {files}," in plain
    levers = rows["floor, levers: requests per object file"]
    assert f"for {files} files: open 1, read " in levers and "release 0," in levers
    assert "push" in rows["floor, levers: grep -r 00-03"]
    # gitfs says what it was asked, by kind.
    assert re.search(r"\d+ requests for %d files: open \d+, read \d+" % files, rows["(1) kernel requests per object file"])
    assert "sizes equal to git's" in rows["(7) ls -l 00-0f (mount)"]
    synthetic = tmp_path / "work" / "synthetic-2000.git"
    assert (synthetic / "objects" / "pack" / "multi-pack-index").exists()
    assert len(subprocess.run(["git", "-C", synthetic, "cat-file", "--batch-all-objects", "--batch-check"],
                              capture_output=True, check=True).stdout.splitlines()) == 2000
    assert list(tmp_path.glob("gitfs-bench-*")) == [], "a mount point was left behind"


class DirectoryMount:
    """A plain directory laid out as a gitfs mount (MNT/xx/yyyy…, MNT/.tree/HEAD/…), standing in
    for one in the bench's checks, which read it as they would read the mount."""

    root = None

    def __init__(self, repo, extra_args=()):
        self.mountpoint = str(self.root)
        self.mount_seconds = 0.01
        self.pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def cpu(self):
        return None

    def peak_memory(self):
        return None

    def requests(self):
        return None


def lay_out(repo, root: Path) -> None:
    out = subprocess.run(["git", "-C", repo.git_dir, "cat-file", "--batch-all-objects", "--batch"],
                         capture_output=True, check=True).stdout
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        oid, _, size = out[pos:end].split()
        data = out[end + 1:end + 1 + int(size)]
        (root / oid[:2].decode()).mkdir(parents=True, exist_ok=True)
        (root / oid[:2].decode() / oid[2:].decode()).write_bytes(data)
        pos = end + 2 + int(size)
    tree = root / ".tree" / "HEAD"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", repo.git_dir, "archive", "HEAD"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree)


def run_bench(argv, capsys) -> tuple[int, dict[str, str]]:
    code = bench_cli.main(argv)
    return code, table_rows(capsys.readouterr().out)


def test_the_checks_against_git_catch_a_wrong_size_and_wrong_bytes(demo_repo, tmp_path, monkeypatch, capsys):
    lay_out(demo_repo, tmp_path)
    DirectoryMount.root = tmp_path
    monkeypatch.setattr(bench_figures, "FreshMount", DirectoryMount)
    monkeypatch.setattr(bench_tree, "FreshMount", DirectoryMount)
    argv = [str(demo_repo.path), "--only", "7,8", "--repeat", "1"]

    code, rows = run_bench(argv, capsys)
    assert code == 0, rows
    assert "sizes equal to git's" in rows["(7) ls -l 00-0f (mount)"]
    assert "paths and sizes equal to git's" in rows["(8) ls -lR .tree/HEAD (mount)"]
    assert "bytes equal to git's" in rows["(8) read every file of .tree/HEAD (mount)"]

    listed = min(tmp_path.glob("0[0-9a-f]/*"))
    listed.write_bytes(listed.read_bytes() + b"x")
    in_tree = next(p for p in sorted((tmp_path / ".tree" / "HEAD").rglob("*")) if p.is_file() and p.stat().st_size)
    data = bytearray(in_tree.read_bytes())
    data[0] ^= 1  # the same size, other bytes: only the read can tell
    in_tree.write_bytes(bytes(data))
    code, rows = run_bench(argv, capsys)
    assert code == 1
    assert " FAIL " in rows["(7) ls -l 00-0f (mount)"] and "1 of git's" in rows["(7) ls -l 00-0f (mount)"]
    assert " FAIL " not in rows["(8) ls -lR .tree/HEAD (mount)"]
    assert " FAIL " in rows["(8) read every file of .tree/HEAD (mount)"]
    assert "contents differ" in rows["(8) read every file of .tree/HEAD (mount)"]


def test_the_tree_checks_see_every_name_git_lists(fuse_available, fixture_repo, tmp_path, monkeypatch, capsys):
    """(8) on a real mount of names git lists and `ls -lR` or a split on spaces would lose: dot
    files and directories, spaces at either end, leading dashes, non-UTF-8 bytes, a symlink and
    submodules among them, and a 1500-entry directory. Its checks find git's paths, sizes and bytes."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where FreshMount makes its mount point
    code, rows = run_bench([str(fixture_repo("refs").path), "--only", "8", "--repeat", "1", "--rev", "names"], capsys)
    listing, reading = rows["(8) ls -lR .tree/names (mount)"], rows["(8) read every file of .tree/names (mount)"]
    assert " FAIL " not in listing and "paths and sizes equal to git's" in listing, listing
    assert " FAIL " not in reading and "bytes equal to git's" in reading, reading
    assert list(tmp_path.glob("gitfs-bench-*")) == [], "a mount point was left behind"


def test_a_mount_without_tree_gives_na_rows(demo_repo, tmp_path, monkeypatch, capsys):
    (tmp_path / "00").mkdir()
    DirectoryMount.root = tmp_path
    monkeypatch.setattr(bench_tree, "FreshMount", DirectoryMount)
    code, rows = run_bench([str(demo_repo.path), "--only", "8", "--repeat", "1"], capsys)
    assert code == 0
    for what in ("ls -lR", "read every file"):
        line = rows[f"(8) .tree/HEAD {what}"]
        assert " n/a " in line and "no .tree in this mount" in line


def test_the_synthetic_blobs_are_distinct_and_the_same_every_time():
    first = list(bench_synthetic.blobs(100))
    assert len(first) == 100 and len(set(first)) == 100
    assert first == list(bench_synthetic.blobs(100))
    assert list(bench_synthetic.blobs(60)) == first[:60]


def test_a_synthetic_build_is_kept_and_a_foreign_directory_refused(tmp_path):
    path, seconds = bench_synthetic.synthetic_repository(tmp_path, 50, progress=lambda text: None)
    assert seconds is not None
    assert bench_synthetic.synthetic_repository(tmp_path, 50, progress=lambda text: None) == (path, None)
    foreign = Path(bench_synthetic.repository_path(tmp_path, 60))
    foreign.mkdir()
    with pytest.raises(bench_cli.GitError, match="not a synthetic build"):
        bench_synthetic.synthetic_repository(tmp_path, 60, progress=lambda text: None)
    assert list(foreign.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--only", "9"], "needs --synthetic"),
    (["--only", "13"], "unknown figure"),
    (["--repeat", "0"], "at least 1"),
])
def test_bad_options_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench_cli.parse_args(["repo", *argv])
    assert message in capsys.readouterr().err
