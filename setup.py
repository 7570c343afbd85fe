"""Build hooks: the optional C accelerators, the man page and bash completion; all other
metadata lives in pyproject.toml."""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# What each accelerator does without its C: the warning a failed build prints.
FALLBACKS = {
    "odb._delta": ("the C delta accelerator (odb/_delta.c)",
                   "applies deltas in pure Python, several times\nslower"),
    "odb._engine": ("the C object engine (odb/_engine.c)",
                    "reads objects (inflation and delta chains) in Python,\nabout twice as slow, one core at a time"),
    "odb._sizes": ("the C size accelerator (odb/_sizes.c)",
                   "reads object sizes for listings (find -size,\nls -l) in pure Python, several times slower"),
    "odb._tree": ("the C tree indexer (odb/_tree.c)",
                  "indexes trees for .tree listings in pure Python,\nabout a hundred times slower"),
    "gitfs.fuse._request_path": ("the compiled request path (gitfs/fuse/_request_path.c)",
                                 "answers every request in Python, a random read\nabout twice as slow"),
}

WARNING = """
**********************************************************************
WARNING: {what} could not be built:
    {error}
gitfs will work, but {fallback}. Install a C compiler, the Python
headers and zlib's (Debian: gcc python3-dev zlib1g-dev) and reinstall.
`gitfs --version` says which is in use.
**********************************************************************
"""


def _engine() -> Extension:
    """The engine inflates with libdeflate (one shot, about 1.7x zlib's speed on pack entries)
    when its headers are there; GITFS_ENGINE_ZLIB=1 builds the zlib fallback instead."""
    if os.environ.get("GITFS_ENGINE_ZLIB") == "1":
        return Extension("odb._engine", ["odb/_engine.c"], depends=["odb/delta_apply.h", "odb/engine_api.h"], libraries=["z"])
    return Extension("odb._engine", ["odb/_engine.c"], depends=["odb/delta_apply.h", "odb/engine_api.h"],
                     define_macros=[("HAVE_LIBDEFLATE", "1")], libraries=["deflate", "z"])


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python path in place and says so on stderr, which is
    what pip shows with -v and `python -m build` always; `gitfs --version` and every mount
    on a terminal say it again, since pip hides build output otherwise. Each extension
    builds (or fails) on its own: odb/_sizes.c also needs zlib's headers."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no headers: distutils raises several kinds
            for ext in self.extensions:
                self._warn(ext, e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            if ext.name == "odb._engine" and ("HAVE_LIBDEFLATE", "1") in ext.define_macros:
                # No libdeflate (Debian: libdeflate-dev): the engine inflates with zlib instead.
                print(f"odb._engine: building with zlib, not libdeflate ({e})", file=sys.stderr)
                ext.define_macros.remove(("HAVE_LIBDEFLATE", "1"))
                ext.libraries = ["z"]
                self.build_extension(ext)
                return
            self._warn(ext, e)

    @staticmethod
    def _warn(ext, error):
        what, fallback = FALLBACKS[ext.name]
        print(WARNING.format(what=what, error=error, fallback=fallback), file=sys.stderr)


setup(
    ext_modules=[
        Extension("odb._delta", ["odb/_delta.c"], depends=["odb/delta_apply.h"]),
        _engine(),
        Extension("odb._sizes", ["odb/_sizes.c"], depends=["odb/index_entries.h"], libraries=["z"]),
        Extension("odb._tree", ["odb/_tree.c"]),
        # After odb._engine, whose API (odb/engine_api.h) it calls.
        Extension("gitfs.fuse._request_path", ["gitfs/fuse/_request_path.c"],
                  depends=["odb/engine_api.h", "odb/index_entries.h"]),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
    # Generated from the argparse parser by scripts/make_docs (a test keeps them current).
    data_files=[
        ("share/man/man1", ["docs/gitfs.1"]),
        ("share/bash-completion/completions", ["docs/completion/gitfs"]),
    ],
)
