"""What `gitfs --version` reports about the accelerators: what odb really uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from odb.pack import sizes
from odb.objects import delta, delta_chain, tree

REPO_ROOT = Path(__file__).resolve().parents[2]
LINES = "from gitfs import features; print('\\n'.join(features.describe()))"


def describe(**env) -> list[str]:
    done = subprocess.run([sys.executable, "-c", LINES], env={**os.environ, **env}, cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_the_accelerators_in_use_are_reported():
    lines = describe()
    assert f"C delta accelerator: {'yes' if delta.apply_delta_c else 'no'}" in lines
    assert f"C size accelerator: {'yes' if sizes.compiled else 'no'}" in lines
    engine = delta_chain.compiled
    assert f"C object engine: {'yes, inflating with ' + engine.INFLATER if engine else 'no'}" in lines
    assert f"C tree indexer: {'yes' if tree.compiled else 'no'}" in lines


def test_pure_python_reports_no_accelerator():
    lines = describe(GITFS_PURE_PYTHON="1")
    assert "C delta accelerator: no" in lines and "C size accelerator: no" in lines
    assert "C tree indexer: no" in lines
    assert "C object engine: no" in lines


@pytest.mark.parametrize("lacking, patch, line", [
    ("READ_FH_IS_INODE_WITHOUT_OPEN", "pyfuse3-read-by-inode.patch",
     "no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): no (stock pyfuse3: 3 kernel requests per file "
     "read instead of 1; for the fast path run: {python} -m gitfs.patched_pyfuse3)"),
    ("set_spin", "pyfuse3-spin.patch",
     "requests awaited awake (pyfuse3.set_spin, patched pyfuse3): no (a request's round trip costs twice "
     "the wake-ups; run: {python} -m gitfs.patched_pyfuse3)"),
    ("set_fast_path", "pyfuse3-fast-path.patch",
     "lookups and reads answered in C (gitfs/fuse/_request_path.c): no, pyfuse3 lacks set_fast_path; "
     "run: {python} -m gitfs.patched_pyfuse3"),
])
def test_a_pyfuse3_without_a_patch_is_told_the_one_command_for_the_fast_path(monkeypatch, lacking, patch, line):
    """A wheel-only installation has no checkout: the command (and the patch) come with the package."""
    import pyfuse3

    from gitfs import features
    monkeypatch.delattr(pyfuse3, lacking, raising=False)
    features.features.cache_clear()
    try:
        lines = features.describe()
    finally:
        features.features.cache_clear()
    assert line.format(python=sys.executable) in lines
    assert (REPO_ROOT / "gitfs" / patch).is_file()


def test_the_fast_path_command_is_quiet_when_pyfuse3_is_patched():
    import pyfuse3
    if not getattr(pyfuse3, "READ_FH_IS_INODE_WITHOUT_OPEN", False):
        pytest.skip("this venv's pyfuse3 is stock (scripts/bootstrap patches it)")
    done = subprocess.run([sys.executable, "-m", "gitfs.patched_pyfuse3"], cwd=REPO_ROOT, capture_output=True,
                          text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
