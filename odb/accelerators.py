"""The optional compiled modules (odb/_engine.c, _delta.c, _sizes.c, _tree.c): loaded once each.

Each is optional (a pip install without a compiler, zlib's or libdeflate's headers builds none
of them) and checks untrusted bytes as the Python path does. GITFS_PURE_PYTHON=1 keeps the
compiled module loaded (the tests compare both paths with it) but makes the code use Python.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NamedTuple


class Accelerator(NamedTuple):
    compiled: ModuleType | None  # the compiled module, or None when it was not built
    used: ModuleType | None  # what the code uses: None under GITFS_PURE_PYTHON=1 too
    implementation: str  # "c" or "python", as IMPLEMENTATION says it


def load(name: str) -> Accelerator:
    """The compiled module odb.<name>, and whether it is used."""
    try:
        compiled = importlib.import_module(f"odb.{name}")
    except ImportError:
        compiled = None
    used = compiled if os.environ.get("GITFS_PURE_PYTHON") != "1" else None
    return Accelerator(compiled, used, "c" if used is not None else "python")
