"""Revisions as `.tree/<rev>` names them: a ref by git's DWIM rules or an object id, peeled to a tree.

    rev = decode_component("heads:feature:x")     # "heads/feature/x": ":" stands for "/"
    found = resolve(store, refs, rev)             # Revision(tree, commit, date, oid, ref, also)

Which names are understood, in git's order (object-name.c get_oid_basic, get_short_oid):
  1. a full hex id of the repository's format: that object, even if a ref has that name;
  2. a ref name, tried with each of ref_rev_parse_rules in turn ("x", "refs/x",
     "refs/tags/x", "refs/heads/x", "refs/remotes/x", "refs/remotes/x/HEAD"); the first
     that resolves wins, as in git, and the others are reported in Revision.also (git warns
     "refname 'x' is ambiguous"); "@" is HEAD;
  3. an abbreviated id (>= 4 hex digits). As `git rev-parse <rev>^{tree}` does, an
     abbreviation shared by several objects still names the one tree-ish among them (a
     commit, a tree, or a tag that peels to one); none or several: AmbiguousPrefix with
     every object of that prefix, as `git rev-parse --disambiguate` lists them.
Revision expressions (~, ^, @{...}, :path, describe output) are not understood.

Peeling: tags peel to their target (at most MAX_TAG_DEPTH levels), commits to their tree.
Reached through a commit, Revision carries the commit and its committer date (for mtimes).

Ref names with "/" in `.tree/`: ":" stands for "/" in the one path component
(`.tree/feature:x` is `feature/x`, `.tree/heads:main`, `.tree/refs:tags:v1.0`). No ref name
can contain ":" (check_refname_format forbids it), so the mapping is one to one, and ":" is
an ordinary character for paths and for shells.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import AmbiguousPrefix, CorruptObject, ObjectNotFound
from .object_headers import GitDate, parse_commit, parse_tag
from .oid import is_hex
from .refname import check_refname
from .refs import RefStore
from .store import MIN_PREFIX, Store

REF_RULES = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
MAX_TAG_DEPTH = 32  # git follows tag chains without a limit; a longer chain than this is refused
SLASH_IN_COMPONENT = ":"


class NotTreeish(ObjectNotFound):
    """The revision names an object that peels to no tree (a blob, or a tag of one)."""

    def __init__(self, rev: str, kind: str):
        super().__init__(rev)
        self.args = (f"{rev} names a {kind}, which has no tree",)
        self.kind = kind


class Named(NamedTuple):
    """What a revision names before peeling."""

    oid: bytes
    ref: str | None  # the full name of the ref it matched
    also: tuple[str, ...]  # other refs the same name matched (git: "refname is ambiguous")


class Revision(NamedTuple):
    tree: bytes
    commit: bytes | None  # the commit it was reached through, if any
    date: GitDate | None  # that commit's committer date
    oid: bytes  # the object the revision named (a tag, commit or tree)
    ref: str | None
    also: tuple[str, ...]


def encode_component(rev: str) -> str:
    """A ref name (or any revision) as one path component of `.tree/`."""
    return rev.replace("/", SLASH_IN_COMPONENT)


def decode_component(component: str) -> str:
    return component.replace(SLASH_IN_COMPONENT, "/")


def resolve(store: Store, refs: RefStore, rev: str) -> Revision:
    """The tree rev names. ObjectNotFound (NotTreeish for a blob) or AmbiguousPrefix;
    CorruptObject when an object on the way cannot be parsed."""
    named = lookup(store, refs, rev, treeish=True)
    tree, commit, date = peel_to_tree(store, named.oid, rev)
    return Revision(tree, commit, date, named.oid, named.ref, named.also)


def lookup(store: Store, refs: RefStore, rev: str, *, treeish: bool = False) -> Named:
    """What `git rev-parse --verify rev` prints (with treeish, `rev^{tree}` before peeling:
    an ambiguous abbreviation may then be settled by type)."""
    if rev == "@":
        rev = "HEAD"
    fmt = store.format
    if len(rev) == fmt.hex_len and is_hex(rev):
        return Named(bytes.fromhex(rev), None, ())
    matches = _dwim(refs, rev) if not _ambiguous_path(rev) else []
    if matches:
        (name, oid), others = matches[0], tuple(n for n, _ in matches[1:])
        return Named(oid, name, others)
    if MIN_PREFIX <= len(rev) < fmt.hex_len and is_hex(rev):
        return Named(_short_id(store, rev, treeish), None, ())
    raise ObjectNotFound(rev)


def _dwim(refs: RefStore, name: str) -> list[tuple[str, bytes]]:
    """refs.c expand_ref: every rule's ref that resolves, in rule order."""
    found = []
    for rule in REF_RULES:
        full = rule.format(name)
        if not check_refname(full):
            continue
        ref = refs.resolve(full)
        if ref is not None and ref.oid is not None:
            found.append((full, ref.oid))
    return found


def _ambiguous_path(name: str) -> bool:
    """object-name.c ambiguous_path: an empty component, or one made of dots only."""
    return any(not part.strip(".") for part in name.split("/"))


def _short_id(store: Store, prefix: str, treeish: bool) -> bytes:
    try:
        return bytes.fromhex(store.resolve_prefix(prefix))
    except AmbiguousPrefix as e:
        if not treeish:
            raise
        fitting = [c for c in e.candidates if _is_treeish(store, bytes.fromhex(c))]
        if len(fitting) != 1:
            raise
        return bytes.fromhex(fitting[0])


def _is_treeish(store: Store, raw: bytes) -> bool:
    """object-name.c disambiguate_treeish_only: a commit or tree, or a tag peeling to one."""
    try:
        kind, raw = _peel_tags(store, raw, raw.hex())
    except (ObjectNotFound, CorruptObject):
        return False
    return kind in ("commit", "tree")


def _peel_tags(store: Store, raw: bytes, rev: str) -> tuple[str, bytes]:
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
    kind, raw = _peel_tags(store, raw, rev)
    if kind == "tree":
        return raw, None, None
    if kind == "commit":
        _, data = store.read(raw)
        commit = parse_commit(data, store.format, raw)
        return commit.tree, raw, commit.committer_date
    raise NotTreeish(rev, kind)
