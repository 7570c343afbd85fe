"""Shared pytest fixtures: the git-built fixture repositories, the git oracle, FUSE availability."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuse_check import require_fuse
from oracle import Git

ROOT = Path(__file__).resolve().parent.parent

# A detached mount without --log-file would log to syslog or /var/log/gitfs/gitfs.log: the
# machine's log, shared with every other user of it. Every gitfs the tests start (directly, or
# through scripts/demo and the packaging tests) inherits this instead, set before any test
# module copies os.environ; tests/gitfs/test_cli_logs.py checks that the shared log stays as it was.
TEST_LOG_DIR = Path(tempfile.mkdtemp(prefix="gitfs-test-logs-"))
os.environ["GITFS_LOG_FILE"] = str(TEST_LOG_DIR / "gitfs.log")
atexit.register(shutil.rmtree, TEST_LOG_DIR, ignore_errors=True)


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "scripts" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_fixtures"] = module
    spec.loader.exec_module(module)
    return module


builder = _load_builder()
FIXTURE_NAMES = list(builder.FIXTURES)
# Repositories whose objects/info/alternates reaches another fixture: copies must bring those too.
ALTERNATE_FAMILY = ["alt-base", "alt-relative", "alt-absolute", "alt-chain"]


@dataclass(frozen=True)
class FixtureRepo:
    """One fixture repository and the ways odb.open() may be pointed at it."""

    name: str
    path: Path  # the work tree, or the bare repository

    @property
    def git_dir(self) -> Path:
        dot_git = self.path / ".git"
        return dot_git if dot_git.is_dir() else self.path

    @property
    def objects_dir(self) -> Path:
        return self.git_dir / "objects"

    @property
    def bare(self) -> bool:
        return self.git_dir == self.path

    @property
    def git(self) -> Git:
        return Git(self.git_dir, None if self.bare else self.path)


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    """The directory of every fixture repository, built (once per builder version) if needed."""
    return builder.ensure_fixtures()


@pytest.fixture(scope="session")
def fixture_repo(fixtures_root):
    """fixture_repo("midx") -> FixtureRepo. These are shared: never modify them (see repo_copy)."""

    def get(name: str) -> FixtureRepo:
        if name not in builder.FIXTURES:
            raise KeyError(f"no fixture repository {name!r}; known: {', '.join(FIXTURE_NAMES)}")
        return FixtureRepo(name, fixtures_root / name)

    return get


@pytest.fixture(scope="session", params=FIXTURE_NAMES)
def any_repo(request, fixture_repo) -> FixtureRepo:
    """Each fixture repository in turn."""
    return fixture_repo(request.param)


@pytest.fixture
def repo_copy(fixtures_root, tmp_path):
    """repo_copy("midx") -> a private FixtureRepo copy in tmp_path that a test may modify.

    An alternates fixture comes with the repositories it borrows from, so relative paths still
    resolve (alt-absolute keeps pointing at the shared alt-base, which the test must not touch).
    """

    def copy(name: str) -> FixtureRepo:
        family = ALTERNATE_FAMILY if name in ALTERNATE_FAMILY else [name]
        for member in family:
            if not (tmp_path / member).exists():
                shutil.copytree(fixtures_root / member, tmp_path / member, symlinks=True)
        return FixtureRepo(name, tmp_path / name)

    return copy


@pytest.fixture(scope="session")
def demo_repo(fixtures_root) -> FixtureRepo:
    """The demo layout (bare: packs under a midx, one outside, loose objects, a tag)."""
    return FixtureRepo("bare", fixtures_root / "bare")


# ---- FUSE -----------------------------------------------------------------------------------------


def under_ci() -> bool:
    """CI runs the suite with CI=true (see .ci/run); there, missing FUSE fails instead of skipping."""
    return os.environ.get("CI") == "true"


@pytest.fixture
def fuse_available() -> None:
    """Use in mount tests: skip without FUSE, fail loudly without it when CI is "true"."""
    require_fuse(ci=under_ci())
