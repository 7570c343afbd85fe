"""What `gitfs --version` reports about the accelerators: what odb really uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from odb import delta, sizes, tree

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
    assert f"C tree indexer: {'yes' if tree.compiled else 'no'}" in lines


def test_pure_python_reports_no_accelerator():
    lines = describe(GITFS_PURE_PYTHON="1")
    assert "C delta accelerator: no" in lines and "C size accelerator: no" in lines
    assert "C tree indexer: no" in lines
