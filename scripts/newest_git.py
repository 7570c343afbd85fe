"""The newest git, built from github:git/git's source, for fixtures that Debian's git cannot write.

    python scripts/newest_git.py [--source GIT_SOURCE_TREE]    # prints the path of its git binary

Debian's git 2.39 cannot write a multi-pack-index v2, incremental multi-pack-index chains or
reftable refs. The fixture scripts that need them call find_newest_git(), which returns
$GITFS_NEWEST_GIT if set, else a build cached in .cache/git-newest/ (ignored by git), building
it there first from a git source tree (a clone of github:git/git) when one is given or found.
Only developers regenerating those fixtures need this: the repositories it writes are committed
under fixtures/, with git's answers beside them, so the test suite never builds git.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "git-newest"
# Where a snapshot of github:git/git is usually found on the machines this project is built on.
KNOWN_SOURCES = [Path("/work/.mirror/git+git/repo")]
MAKE_FLAGS = ["NO_CURL=1", "NO_GETTEXT=1", "NO_TCLTK=1", "NO_PERL=1", "NO_PYTHON=1", "NO_EXPAT=1",
              "NO_RUST=1"]


def find_newest_git(source: Path | None = None) -> str:
    """The path of a git binary new enough for midx v2, midx chains and reftable."""
    override = os.environ.get("GITFS_NEWEST_GIT")
    if override:
        return override
    binary = CACHE / "bin" / "git"
    if binary.exists():
        return str(binary)
    source = source or next((p for p in KNOWN_SOURCES if p.exists()), None)
    if source is None:
        sys.exit("newest_git: no git source tree; pass --source (a clone of github:git/git) "
                 "or set GITFS_NEWEST_GIT to a git >= 2.47")
    build(source)
    return str(binary)


def build(source: Path) -> None:
    """Clones source (a work tree or a bare mirror) into a scratch tree and installs into CACHE."""
    with tempfile.TemporaryDirectory(prefix="gitfs-git-build.") as scratch:
        tree = Path(scratch) / "git"
        subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{source.resolve()}", str(tree)], check=True)
        jobs = str(os.cpu_count() or 2)
        print(f"newest_git: building git from {source} into {CACHE} (a few minutes)", file=sys.stderr)
        subprocess.run(["make", "-j", jobs, *MAKE_FLAGS, f"prefix={CACHE}", "install"], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a clone of github:git/git (default: a known snapshot)")
    parser.add_argument("--rebuild", action="store_true", help="throw the cached build away first")
    args = parser.parse_args()
    if args.rebuild:
        shutil.rmtree(CACHE, ignore_errors=True)
    print(find_newest_git(args.source))


if __name__ == "__main__":
    main()
