"""The optional C accelerators (odb/_delta.c, odb/_sizes.c, odb/_engine.c, odb/_tree.c): each is used when built, and
GITFS_PURE_PYTHON=1 makes every one give way to the pure-Python path, which stays complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from odb.pack import sizes
from odb.objects import delta, delta_chain, tree

REPO_ROOT = Path(__file__).resolve().parents[2]


ACCELERATORS = {"delta": delta.apply_delta_c is not None, "sizes": sizes.compiled is not None,
                "delta_chain": delta_chain.compiled is not None,
                "tree": tree.compiled is not None}
MODULES = {"delta": delta, "sizes": sizes, "delta_chain": delta_chain, "tree": tree}  # (their packages vary)


def buildable() -> bool:
    """What setup.py needs to build them: a C compiler and zlib's header."""
    return shutil.which("cc") is not None and Path("/usr/include/zlib.h").exists()


@pytest.mark.parametrize("module", ACCELERATORS)
def test_each_accelerator_is_built_wherever_it_can_be(module):
    """A failed build only warns at install time; here it fails, in CI always and elsewhere
    wherever the build had what it needs (the other tests take 'built' from the very flags)."""
    if os.environ.get("CI") == "true" or buildable():
        source = "odb/_engine.c" if module == "delta_chain" else f"odb/_{module}.c"
        assert ACCELERATORS[module], f"{source} is not built: see the warning of the install"


@pytest.mark.parametrize("module, built", ACCELERATORS.items())
def test_implementation_follows_the_environment(module, built):
    code = f"import {MODULES[module].__name__} as module; print(module.IMPLEMENTATION)"
    env = dict(os.environ, GITFS_PURE_PYTHON="1")
    forced = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    assert forced.stdout.strip() == "python"
    env.pop("GITFS_PURE_PYTHON")
    default = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True)
    assert default.stdout.strip() == ("c" if built else "python")
