"""Ref names: git's check_refname_format rules and which names belong to a worktree."""

from __future__ import annotations

import os
from typing import NamedTuple

# refs.c's refname_disposition: 1 ends a component, 2 is ".", 3 is "{", 4 is never allowed,
# 5 is "*" (only in refspec patterns, which a ref name never is). Bytes >= 0x80 are allowed.
_FORBIDDEN = frozenset(range(0x20)) | frozenset(b" :?[\\^~*\x7f")
_LOCK = b".lock"

# refs.c: per-worktree namespaces, stored in each worktree's own git dir.
PER_WORKTREE_PREFIXES = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")
# refs.c is_pseudo_ref: read from their files even with reftable, and never listed.
PSEUDO_REFS = ("FETCH_HEAD", "MERGE_HEAD")
_IRREGULAR_ROOT_REFS = ("HEAD", "AUTO_MERGE", "BISECT_EXPECTED_REV", "NOTES_MERGE_PARTIAL",
                        "NOTES_MERGE_REF", "MERGE_AUTOSTASH")


def check_refname(name: str, *, allow_onelevel: bool = True) -> bool:
    """True if name is a valid ref name, as git's check_refname_format decides.

    A component may not begin with "." or end with ".lock", no ".." and no "@{" anywhere,
    no control character, space, ":", "?", "[", "\\", "^", "~" or "*"; no empty component
    (so no leading, trailing or double "/"), the name may not end with "." and may not be
    "@". One-level names ("HEAD") need allow_onelevel.
    """
    raw = os.fsencode(name)
    if not raw or raw == b"@" or raw.endswith(b".") or b".." in raw or b"@{" in raw:
        return False
    if not _FORBIDDEN.isdisjoint(raw):
        return False
    components = raw.split(b"/")
    for component in components:
        if not component or component.startswith(b".") or component.endswith(_LOCK):
            return False
    return allow_onelevel or len(components) >= 2


def is_root_ref_syntax(name: str) -> bool:
    """Upper-case letters, "-" and "_" only: the names git keeps at the top of the git dir."""
    return all(c.isascii() and (c.isupper() or c in "-_") for c in name)


def is_root_ref(name: str) -> bool:
    """refs.c is_root_ref: HEAD, *_HEAD and a few others, but not the pseudo refs."""
    if not name or not is_root_ref_syntax(name) or name in PSEUDO_REFS:
        return False
    return name.endswith("_HEAD") or name in _IRREGULAR_ROOT_REFS


def is_per_worktree_ref(name: str) -> bool:
    return name.startswith(PER_WORKTREE_PREFIXES)


def is_current_worktree_ref(name: str) -> bool:
    """Names that each worktree has its own copy of: root refs and the per-worktree namespaces."""
    return is_root_ref_syntax(name) or is_per_worktree_ref(name)


class WorktreeRef(NamedTuple):
    """Where refs.c parse_worktree_ref puts a name: kind, the worktree it names, its bare name."""

    kind: str  # "current", "other" (worktrees/<w>/...), "main" (main-worktree/...), "shared"
    worktree: str | None
    bare: str


def parse_worktree_ref(name: str) -> WorktreeRef:
    if name.startswith("worktrees/"):
        rest = name[len("worktrees/"):]
        worktree, slash, bare = rest.partition("/")
        if not slash:
            return WorktreeRef("other", worktree, "")
        if is_current_worktree_ref(bare):
            return WorktreeRef("other", worktree, bare)
    if name.startswith("main-worktree/"):
        bare = name[len("main-worktree/"):]
        if is_current_worktree_ref(bare):
            return WorktreeRef("main", None, bare)
    if is_current_worktree_ref(name):
        return WorktreeRef("current", None, name)
    return WorktreeRef("shared", None, name)


def sort_key(name: str) -> bytes:
    """git orders refs by the bytes of their names (strcmp), which str order is not for
    names that are not valid UTF-8."""
    return os.fsencode(name)
