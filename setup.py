"""Build hooks: the optional C delta accelerator, the man page and bash completion; all other
metadata lives in pyproject.toml."""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

WARNING = """
**********************************************************************
WARNING: the C delta accelerator (odb/_delta.c) could not be built:
    {error}
gitfs will work, but applies deltas in pure Python, several times
slower. Install a C compiler and the Python headers (Debian: gcc
python3-dev) and reinstall. `gitfs --version` says which is in use.
**********************************************************************
"""


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python path in place and says so on stderr, which is
    what pip shows with -v and `python -m build` always; `gitfs --version` and every mount
    on a terminal say it again, since pip hides build output otherwise."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no headers: distutils raises several kinds
            self._warn(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._warn(e)

    @staticmethod
    def _warn(error):
        print(WARNING.format(error=error), file=sys.stderr)


setup(
    ext_modules=[Extension("odb._delta", ["odb/_delta.c"])],
    cmdclass={"build_ext": OptionalBuildExt},
    # Generated from the argparse parser by scripts/make_docs (a test keeps them current).
    data_files=[
        ("share/man/man1", ["docs/gitfs.1"]),
        ("share/bash-completion/completions", ["docs/completion/gitfs"]),
    ],
)
