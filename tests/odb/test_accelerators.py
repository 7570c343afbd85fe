"""The optional C accelerators (odb/_delta.c, odb/_sizes.c, odb/_tree.c): each is used when built, and
GITFS_PURE_PYTHON=1 makes every one give way to the pure-Python path, which stays complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from odb import delta, sizes, tree

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module, built", [("delta", delta.apply_delta_c is not None),
                                           ("sizes", sizes.compiled is not None),
                                           ("tree", tree.compiled is not None)])
def test_implementation_follows_the_environment(module, built):
    code = f"from odb import {module}; print({module}.IMPLEMENTATION)"
    env = dict(os.environ, GITFS_PURE_PYTHON="1")
    forced = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    assert forced.stdout.strip() == "python"
    env.pop("GITFS_PURE_PYTHON")
    default = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True)
    assert default.stdout.strip() == ("c" if built else "python")
