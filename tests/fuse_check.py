"""Whether this machine can mount FUSE, and the skip-or-fail policy for tests that need it."""

from __future__ import annotations

import os
import shutil

import pytest


def fuse_problem() -> str | None:
    """Why this machine cannot mount FUSE filesystems, or None if it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not on PATH (install the fuse3 package)"
    try:
        import pyfuse3  # noqa: F401
    except ImportError as e:
        return f"pyfuse3 cannot be imported: {e}"
    return None


def require_fuse(*, ci: bool) -> None:
    """Skips the calling test when FUSE is unavailable, except under CI, where that is a failure.

    CI must exercise the mount tests: a CI machine without FUSE is a broken CI machine, and a
    silent skip there would pass a suite that tested nothing.
    """
    problem = fuse_problem()
    if problem is None:
        return
    if ci:
        pytest.fail(f"CI=true but FUSE is unavailable: {problem}; the mount tests must run in CI",
                    pytrace=False)
    pytest.skip(f"FUSE unavailable: {problem}")
