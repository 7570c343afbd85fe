"""The FUSE availability policy: skip on a developer machine without FUSE, fail under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest

import fuse_check


@pytest.fixture
def no_fuse(monkeypatch):
    monkeypatch.setattr(fuse_check, "fuse_problem", lambda: "/dev/fuse is missing")


def test_skips_without_fuse_outside_ci(no_fuse):
    with pytest.raises(pytest.skip.Exception, match="/dev/fuse is missing"):
        fuse_check.require_fuse(ci=False)


def test_fails_without_fuse_under_ci(no_fuse):
    with pytest.raises(pytest.fail.Exception, match="CI=true but FUSE is unavailable: /dev/fuse is missing"):
        fuse_check.require_fuse(ci=True)


def test_passes_when_fuse_works(monkeypatch):
    monkeypatch.setattr(fuse_check, "fuse_problem", lambda: None)
    fuse_check.require_fuse(ci=True)
    fuse_check.require_fuse(ci=False)


def test_probe_agrees_with_this_machine():
    problem = fuse_check.fuse_problem()
    usable = (os.path.exists("/dev/fuse") and os.access("/dev/fuse", os.R_OK | os.W_OK)
              and shutil.which("fusermount3") is not None)
    assert (problem is None) == usable, problem
