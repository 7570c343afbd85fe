"""git's revision language (`git rev-parse`), for `.tree/<rev>`, `.log/<rev>` and `gitfs resolve`.

    rev = decode_component("heads:feature:x~2")  # "heads/feature/x~2": ":" stands for "/"
    found = resolve(store, refs, rev)             # Revision(tree, commit, date, oid, ref, also)
    named = lookup(store, refs, "v1.0^{}")        # Named(oid, ref, also): what rev-parse prints

Names (object-name.c get_oid_basic, get_short_oid), in git's order:
  1. a full hex id of the repository's format: that object, even if a ref has that name;
  2. a ref name, tried with each of ref_rev_parse_rules in turn ("x", "refs/x",
     "refs/tags/x", "refs/heads/x", "refs/remotes/x", "refs/remotes/x/HEAD"); the first
     that resolves wins, as in git, and the others are reported in Revision.also (git warns
     "refname 'x' is ambiguous"); "@" is HEAD;
  3. an abbreviated id (>= 4 hex digits). An abbreviation shared by several objects still
     names the one object of the kind the expression needs (a tree-ish for `.tree` and
     `^{tree}`, a commit-ish before `~`, `^` and `^{commit}`), as git's disambiguation does;
     none or several: AmbiguousPrefix with every object of that prefix.
Expressions around a name (get_oid_1, peel_onion, get_oid_basic, get_oid_oneline):
  - `<rev>~<n>` (first parents), `<rev>^<n>` (the nth parent; `^0` the commit itself),
    `~` and `^` alone meaning 1, any number of them, applied left to right;
  - `<rev>^{}` (tags peeled), `^{commit}`, `^{tree}`, `^{blob}`, `^{tag}`, `^{object}`;
  - `<ref>@{<n>}` (the nth previous value in the ref's reflog), `<ref>@{<date>}` (its value
    at that date), `@{<n>}`/`@{<date>}` (the current branch's), `@{-<n>}` (the branch checked
    out n checkouts ago, from HEAD's reflog); reflogs of the files backend only (reftable's
    log blocks are not read);
  - `:/<text>` (the youngest commit reachable from any ref whose message matches the
    regular expression; `:/!-<text>` the youngest that does not match; Python's re
    backtracks where git's regexec does not, so a repeated group holding a repetition, as
    in "(a+)+", is refused rather than risk exponential time).
Dates in `@{...}` (a subset of git's approxidate): seconds since the epoch (9 digits or
more), `YYYY-MM-DD[( |T)HH:MM[:SS]][ ]([+-]HHMM|Z)` (local time without a zone, today's time
of day without a time, as git), `now`, `yesterday`, `<n>.<unit>.ago` / `<n> <unit> ago`.
Anything else, and `@{upstream}`, `@{push}`, `^{/text}`, `<rev>:<path>`, ranges, gives
BadRevision (an ObjectNotFound that says why). Nothing recurses: steps are a list, walks are
loops, counts are bounded, so neither `~100000` nor a 4 KiB chain of `^` can overflow a stack.

Peeling: tags peel to their target (at most MAX_TAG_DEPTH levels), commits to their tree.
Reached through a commit, Revision carries the commit and its committer date (for mtimes).

Where each part lives: this module resolves names and applies steps; revision_syntax.py takes an
expression apart and maps path components; approxidate.py reads dates; message_search.py is
`:/<text>`; peeling.py peels tags and commits.

As one path component (`.tree/<rev>`, `.log/<rev>`), since "/" cannot be in one:
  - ":" stands for "/" (`.tree/feature:x` is `feature/x`, `.tree/refs:tags:v1.0~2`), except
    inside `@{...}` and `^{...}` (`.tree/main@{2020-01-01 10:00:00}` keeps its colons);
  - a component that starts with ":" is git's `:/<text>`, the rest taken as it is
    (`.tree/:fix the parser` is `:/fix the parser`).
No ref name can contain ":", "@{" or "^" (check_refname_format forbids them) and none starts
with "/", so every name that worked before keeps its meaning.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .approxidate import parse_date
from .errors import AmbiguousPrefix, BadRevision, ObjectNotFound
from .message_search import search_messages
from .objects.object_headers import GitDate
from .oid import is_hex
from .refs.reflog import read_reflog, reflog_exists
from .refs.names import check_refname
from .refs import RefStore
from .peeling import MAX_TAG_DEPTH, NotTreeish, commit_of, peel_tags, peel_to_tree, peels_to
from .revision_syntax import KINDS, Step, decode_component, encode_component, parse
from .store import MIN_PREFIX, Store

# The parts in modules of their own, named here too: what callers of odb.revision have used.
__all__ = ["BadRevision", "KINDS", "MAX_TAG_DEPTH", "Named", "NotTreeish", "Revision", "decode_component",
           "encode_component", "lookup", "parse", "parse_date", "peel_to_tree", "resolve", "resolve_commit",
           "search_messages"]

REF_RULES = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
_PRIOR = re.compile(r"@\{-(\d+)\}")


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


# -- resolving ----------------------------------------------------------------------------------


def resolve(store: Store, refs: RefStore, rev: str) -> Revision:
    """The tree rev names. ObjectNotFound (NotTreeish for a blob, BadRevision for what git
    refuses) or AmbiguousPrefix; CorruptObject when an object on the way cannot be parsed."""
    named = lookup(store, refs, rev, treeish=True)
    tree, commit, date = peel_to_tree(store, named.oid, rev)
    return Revision(tree, commit, date, named.oid, named.ref, named.also)


def resolve_commit(store: Store, refs: RefStore, rev: str) -> Named:
    """The commit rev names (`rev^{commit}`): what `.log/<rev>` walks from."""
    named = lookup(store, refs, rev, committish=True)
    kind, raw = peel_tags(store, named.oid, rev)
    if kind != "commit":
        raise BadRevision(rev, f"names a {kind}, not a commit")
    return Named(raw, named.ref, named.also)


def lookup(store: Store, refs: RefStore, rev: str, *, treeish: bool = False, committish: bool = False) -> Named:
    """What `git rev-parse --verify rev` prints (with treeish or committish, an ambiguous
    abbreviation may be settled by the kind the caller needs, as for `rev^{tree}`)."""
    expr = parse(rev)
    if expr.search is not None:
        return Named(search_messages(store, refs, expr.search, rev), None, ())
    hint = "treeish" if treeish else "committish" if committish else None
    if expr.steps:
        first = expr.steps[0]
        if first.op in "~^" or first.kind == "commit":
            hint = "committish"
        elif first.kind == "tree":
            hint = "treeish"
    named = _basic(store, refs, expr.name, expr.reflog, rev, hint)
    oid = named.oid
    for step in expr.steps:
        oid = _apply(store, oid, step, rev)
    return Named(oid, named.ref, named.also)


def _basic(store: Store, refs: RefStore, name: str, reflog: str | None, rev: str, hint: str | None) -> Named:
    fmt = store.format
    if reflog is None:
        if len(name) == fmt.hex_len and is_hex(name):
            return Named(bytes.fromhex(name), None, ())
        if name == "@":
            name = "HEAD"
        prior = _PRIOR.fullmatch(name)
        if prior:
            name = _prior_checkout(refs, int(prior.group(1)), rev)
            if len(name) == fmt.hex_len and is_hex(name):
                return Named(bytes.fromhex(name), None, ())  # it was a detached HEAD
        matches = _dwim(refs, name) if name and not _ambiguous_path(name) else []
        if matches:
            (full, oid), others = matches[0], tuple(n for n, _ in matches[1:])
            return Named(oid, full, others)
        if MIN_PREFIX <= len(name) < fmt.hex_len and is_hex(name):
            return Named(_short_id(store, name, hint), None, ())
        raise ObjectNotFound(rev)
    if name and _ambiguous_path(name):
        raise ObjectNotFound(rev)
    if not name:
        head = refs.resolve("HEAD")  # "@{...}": the current branch's reflog (HEAD's if detached)
        if head is None or head.oid is None:
            raise ObjectNotFound(rev)
        log_name, current = head.target or "HEAD", head.oid
    else:
        prior = _PRIOR.fullmatch(name)
        if prior:
            name = _prior_checkout(refs, int(prior.group(1)), rev)
        found = _dwim_log(refs, "HEAD" if name == "@" else name)
        if found is None:
            raise ObjectNotFound(rev)
        log_name, current = found
    return Named(_at(refs, log_name, current, reflog, rev), log_name, ())


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


def _dwim_log(refs: RefStore, name: str) -> tuple[str, bytes] | None:
    """refs.c repo_dwim_log: the first rule's ref that resolves and has a reflog (its own, or
    that of the ref a symbolic one ends at): (the reflog's ref name, the ref's value)."""
    for rule in REF_RULES:
        full = rule.format(name)
        if not check_refname(full):
            continue
        ref = refs.resolve(full)
        if ref is None or ref.oid is None:
            continue
        if reflog_exists(refs, full):
            return full, ref.oid
        if ref.target is not None and ref.target != full and reflog_exists(refs, ref.target):
            return ref.target, ref.oid
    return None


def _at(refs: RefStore, log_name: str, current: bytes, selector: str, rev: str) -> bytes:
    """refs.c read_ref_at: the value of log_name n updates ago, or at a date."""
    if selector.isdigit() and len(selector) > 18:
        raise BadRevision(rev, f"@{{{selector[:12]}...}}: too large a count or date")
    entries = read_reflog(refs, log_name)
    if entries is None:
        entries = []
    if selector.isdigit() and int(selector) < 100_000_000:
        n = int(selector)
        if n == 0:
            return entries[-1].new if entries else current
        if not entries:
            raise BadRevision(rev, f"the reflog of {log_name} is empty")
        count = n
        for entry in reversed(entries):  # newest first
            if count > 0:
                count -= 1
            if count == 0 and any(entry.old):
                return entry.old
        raise BadRevision(rev, f"the reflog of {log_name} has only {len(entries)} entries")
    when = int(selector) if selector.isdigit() else parse_date(selector, rev)
    if not entries:
        raise BadRevision(rev, f"the reflog of {log_name} is empty")
    newer_old = None  # the old value of the entry after the one looked at
    for entry in reversed(entries):
        if entry.seconds <= when:
            if (newer_old is not None and any(newer_old)) or entry.seconds == when:
                return entry.new
            return current  # the newest entry is old enough: the ref as it is
        newer_old = entry.old
    oldest = entries[0]  # git warns "log only goes back to <date>" and takes its start
    return oldest.old if any(oldest.old) else oldest.new


def _prior_checkout(refs: RefStore, n: int, rev: str) -> str:
    """sha1-name.c interpret_nth_prior_checkout: the branch left by the nth last checkout."""
    if n < 1:
        raise BadRevision(rev, "@{-0} names no checkout")
    remaining = n
    for entry in reversed(read_reflog(refs, "HEAD") or []):
        if not entry.message.startswith("checkout: moving from "):
            continue
        rest = entry.message[len("checkout: moving from "):]
        to = rest.find(" to ")
        if to < 0:
            continue
        remaining -= 1
        if remaining == 0:
            return rest[:to]
    raise BadRevision(rev, f"HEAD's reflog has fewer than {n} checkouts")


def _apply(store: Store, oid: bytes, step: Step, rev: str) -> bytes:
    if step.op == "peel":
        if step.kind == "object":
            store.read_header(oid)  # it must exist
            return oid
        if step.kind == "tag":
            kind, _ = store.read_header(oid)
            if kind != "tag":
                raise BadRevision(rev, f"^{{tag}} of a {kind}")
            return oid
        kind, raw = peel_tags(store, oid, rev)
        if step.kind in ("", kind):
            return raw
        if step.kind == "tree" and kind == "commit":
            return commit_of(store, raw).tree
        raise BadRevision(rev, f"^{{{step.kind}}} of a {kind}")
    kind, raw = peel_tags(store, oid, rev)
    if kind != "commit":
        raise BadRevision(rev, f"{step.op} of a {kind}")
    if step.op == "^":
        if step.n == 0:
            return raw
        parents = commit_of(store, raw).parents
        if step.n > len(parents):
            raise BadRevision(rev, f"{raw.hex()} has {len(parents)} parents, not {step.n}")
        return parents[step.n - 1]
    for _ in range(step.n):
        parents = commit_of(store, raw).parents
        if not parents:
            raise BadRevision(rev, f"{raw.hex()} has no parent: the history is shorter")
        raw = parents[0]
    return raw


def _ambiguous_path(name: str) -> bool:
    """object-name.c ambiguous_path: an empty component, or one made of dots only."""
    return any(not part.strip(".") for part in name.split("/"))


def _short_id(store: Store, prefix: str, hint: str | None) -> bytes:
    try:
        return bytes.fromhex(store.resolve_prefix(prefix))
    except AmbiguousPrefix as e:
        if hint is None:
            raise
        wanted = ("commit", "tree") if hint == "treeish" else ("commit",)
        fitting = [c for c in e.candidates if peels_to(store, bytes.fromhex(c), wanted)]
        if len(fitting) != 1:
            raise
        return bytes.fromhex(fitting[0])


