"""Peeling: tags to their target (at most MAX_TAG_DEPTH levels), commits to their tree.

Reached through a commit, a tree comes with the commit and its committer date (for mtimes).
"""

from __future__ import annotations

from .errors import CorruptObject, ObjectNotFound
from .objects.object_headers import GitDate, parse_commit, parse_tag
from .store import Store

MAX_TAG_DEPTH = 32  # git follows tag chains without a limit; a longer chain than this is refused


class NotTreeish(ObjectNotFound):
    """The revision names an object that peels to no tree (a blob, or a tag of one)."""

    def __init__(self, rev: str, kind: str):
        super().__init__(rev)
        self.args = (f"{rev} names a {kind}, which has no tree",)
        self.kind = kind


def commit_of(store: Store, raw: bytes):
    kind, data = store.read(raw)
    if kind != "commit":
        raise CorruptObject("commit object", None, f"a parent is a {kind}", oid=raw.hex())
    return parse_commit(data, store.format, raw)


def commit_seconds(commit) -> int:
    return commit.committer_date.seconds if commit.committer_date is not None else 0


def peels_to(store: Store, raw: bytes, kinds: tuple[str, ...]) -> bool:
    """object-name.c disambiguate_treeish_only / committish_only: the object, tags peeled,
    is one of kinds."""
    try:
        kind, raw = peel_tags(store, raw, raw.hex())
    except (ObjectNotFound, CorruptObject):
        return False
    return kind in kinds


def peel_tags(store: Store, raw: bytes, rev: str) -> tuple[str, bytes]:
    """The first object that is not a tag, following the tag chain from raw."""
    for _ in range(MAX_TAG_DEPTH + 1):
        kind, size = store.read_header(raw)
        if kind != "tag":
            return kind, raw
        _, data = store.read(raw)
        raw = parse_tag(data, store.format, raw).object
    raise CorruptObject("tag object", None, f"{rev}: tags nested more than {MAX_TAG_DEPTH} deep", oid=raw.hex())


def peel_to_tree(store: Store, raw: bytes, rev: str | None = None) -> tuple[bytes, bytes | None, GitDate | None]:
    """(tree, commit, committer date) of the object raw, tags peeled."""
    rev = rev or raw.hex()
    kind, raw = peel_tags(store, raw, rev)
    if kind == "tree":
        return raw, None, None
    if kind == "commit":
        commit = commit_of(store, raw)
        return commit.tree, raw, commit.committer_date
    raise NotTreeish(rev, kind)
