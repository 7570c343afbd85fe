"""Fixtures shared by the damage tests of the library and of the mount: the midx fixture repository.

Import them by name into a test module (`from midx_fixtures import bases, repo, truth`).
"""

from __future__ import annotations

import pytest

import damage


@pytest.fixture(scope="module")
def truth(fixture_repo) -> dict[str, tuple[str, bytes]]:
    """Every object of the pristine midx fixture, as git reads it."""
    git = fixture_repo("midx").git
    return {oid: (kind, data) for oid, kind, data in git.contents(git.ids())}


@pytest.fixture(scope="module")
def bases(fixture_repo) -> dict[str, str]:
    """delta id -> base id over every pack of the pristine fixture (git verify-pack -v)."""
    return damage.delta_bases(fixture_repo("midx").git_dir)


@pytest.fixture
def repo(repo_copy):
    """A private copy of the midx fixture: three packs under a midx, one outside it, loose objects."""
    return repo_copy("midx")
