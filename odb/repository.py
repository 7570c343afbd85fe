"""Finding a repository's objects directory and hash format from whatever path a user gives."""

from __future__ import annotations

import configparser
import os

from .errors import NotARepository
from .mapped_file import open_regular
from .oid import FORMATS, SHA1, ObjectFormat


def find_objects_dir(path: str) -> tuple[str, str | None]:
    """(objects dir, git dir or None) for a bare repo, a .git dir, a work tree or an objects dir."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise NotARepository(f"{path}: no such file or directory")
    if not os.path.isdir(path):
        raise NotARepository(f"{path}: not a directory")
    dotgit = os.path.join(path, ".git")
    if os.path.isfile(dotgit):
        path = _follow_gitfile(dotgit)
    elif os.path.isdir(dotgit):
        path = dotgit
    if _is_git_dir(path):
        return _common_objects_dir(path), path
    if _is_objects_dir(path):
        return path, None
    raise NotARepository(f"{path}: not a git repository (no objects directory)")


def _follow_gitfile(dotgit: str) -> str:
    with open(dotgit, encoding="utf-8", errors="replace") as f:
        line = f.readline().strip()
    if not line.startswith("gitdir:"):
        raise NotARepository(f"{dotgit}: not a gitdir file")
    target = line[len("gitdir:") :].strip()
    return os.path.normpath(os.path.join(os.path.dirname(dotgit), target))


def _is_git_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "HEAD")) and (
        os.path.isdir(os.path.join(path, "objects")) or os.path.isfile(os.path.join(path, "commondir"))
    )


def _common_objects_dir(git_dir: str) -> str:
    # Linked worktrees keep their objects in the main repository's git dir.
    common = os.path.join(git_dir, "commondir")
    if os.path.isfile(common):
        with open(common, encoding="utf-8", errors="replace") as f:
            git_dir = os.path.normpath(os.path.join(git_dir, f.read().strip()))
    objects = os.path.join(git_dir, "objects")
    if not os.path.isdir(objects):
        raise NotARepository(f"{git_dir}: git directory without objects/")
    return objects


def _is_objects_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "pack")) or os.path.isdir(os.path.join(path, "info"))


def object_format(objects_dir: str, git_dir: str | None) -> ObjectFormat:
    """extensions.objectFormat of the repository's config; SHA-1 when unset."""
    if git_dir is None:
        git_dir = os.path.dirname(objects_dir)
    config = os.path.join(git_dir, "config")
    if not os.path.isfile(config):
        return SHA1
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(config, encoding="utf-8")
        name = parser.get("extensions", "objectformat", fallback="sha1").strip().lower()
    except (configparser.Error, UnicodeDecodeError):
        # git's config syntax is wider than configparser's; look for the one line we need.
        name = _scan_for_format(config)
    fmt = FORMATS.get(name)
    if fmt is None:
        raise NotARepository(f"{git_dir}: unknown object format {name!r}")
    return fmt


def _scan_for_format(config: str) -> str:
    section = ""
    with open(config, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]").strip().lower()
            elif section == "extensions" and "=" in line:
                key, _, value = line.partition("=")
                if key.strip().lower() == "objectformat":
                    return value.strip().lower()
    return "sha1"


def read_alternates(objects_dir: str) -> list[str]:
    """The alternate objects directories listed by objects/info/alternates, made absolute."""
    path = os.path.join(objects_dir, "info", "alternates")
    try:
        with open(open_regular(path), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        line = line.strip()
        # No path holds a NUL; os.path functions would raise ValueError on one.
        if not line or line.startswith("#") or "\0" in line:
            continue
        if line.startswith('"') and line.endswith('"') and len(line) > 1:
            line = line[1:-1]  # git allows C-quoted paths; plain ones are what matters here
        out.append(os.path.normpath(os.path.join(objects_dir, line)))
    return out
