"""Alternates: the other objects directories a repository borrows objects from (those named by
GIT_ALTERNATE_OBJECT_DIRECTORIES, then objects/info/alternates, each depth first), found and
opened in git's order after the repository's own."""

from __future__ import annotations

import logging
import os

from .errors import display_path
from .objects_dir import ObjectsDir
from .oid import ObjectFormat
from .refused_paths import real_or_none
from .alternates_file import read_alternates

log = logging.getLogger("odb")

MAX_ALTERNATE_DEPTH = 5  # as git's link_alt_odb_entries


def open_alternates(objects_dir: str, fmt: ObjectFormat, named: list[str]) -> list[ObjectsDir]:
    """The alternates of objects_dir, opened in git's order; one that does not open is ignored,
    with a warning."""
    out = []
    for path in alternate_paths(objects_dir, named):
        try:
            out.append(ObjectsDir(path, fmt, f"alternate:{path}:"))
        except OSError as e:
            log.warning("ignoring alternate %s: %s", display_path(path), e.strerror)
    return out


def alternate_paths(objects_dir: str, named: list[str]) -> list[str]:
    """Alternates in git's order (those named by the environment, then info/alternates,
    each depth first), each once, the repository itself never."""
    seen = {real_or_none(objects_dir)}
    out = []
    stack = [(path, 1) for path in reversed(named + read_alternates(objects_dir))]
    while stack:
        path, depth = stack.pop()
        real = real_or_none(path)
        shown = display_path(path)
        if real is None:
            log.warning("ignoring alternate %s: it resolves into the mount itself", shown)
            continue
        if real in seen:
            log.warning("ignoring alternate %s: it loops back", shown)
            continue
        if depth > MAX_ALTERNATE_DEPTH:
            log.warning("ignoring alternate %s: nested more than %d deep", shown, MAX_ALTERNATE_DEPTH)
            continue
        if not os.path.isdir(real):
            log.warning("ignoring alternate %s: not a directory", shown)
            continue
        seen.add(real)
        out.append(path)
        stack.extend((p, depth + 1) for p in reversed(read_alternates(path)))
    return out
