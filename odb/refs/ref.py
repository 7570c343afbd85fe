"""What a ref is (Ref), one that git would not use (Broken), and the one warning per broken file."""

from __future__ import annotations

import logging
from typing import NamedTuple

log = logging.getLogger("odb")

MAX_WARNINGS = 1000


class Ref(NamedTuple):
    """A ref. For a symbolic ref, target is the name it points at (read: the next name of
    the chain; list and resolve: the last) and oid is what it resolves to (None while that
    is missing: an unborn branch). Ids are raw bytes."""

    name: str
    oid: bytes | None
    target: str | None = None
    peeled: bytes | None = None  # an annotated tag's object, when packed-refs or reftable record it


class Broken(Exception):
    """A ref that is there but that git would not use (kept inside this module)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason



_warned: set[tuple[str, str]] = set()


def _warn(path: str, reason: str) -> None:
    """Refs are re-read on every call; a broken one is logged once, not at every listing."""
    key = (path, reason)
    if key in _warned:
        return
    if len(_warned) >= MAX_WARNINGS:
        _warned.clear()
    _warned.add(key)
    log.warning("ignoring ref %s: %s", path, reason)

