"""`:/<text>`: the youngest commit reachable from any ref whose message matches (get_oid_oneline).

Python's re backtracks where git's regexec does not, so a repeated group holding a repetition, as
in "(a+)+", is refused rather than risk exponential time.
"""

from __future__ import annotations

import heapq
import re

from .errors import BadRevision, CorruptObject, ObjectNotFound
from .objects.object_headers import parse_commit
from .peeling import commit_of, commit_seconds, peel_tags
from .refs import RefStore
from .store import Store


def search_messages(store: Store, refs: RefStore, text: str, rev: str) -> bytes:
    """object-name.c get_oid_oneline: the youngest commit (by committer date) reachable from
    any ref or HEAD whose message matches the regular expression text ("!-" in front: does
    not match; "!!": a literal "!"). A walk over the history, with a heap, never recursion."""
    negative = False
    if text.startswith("!"):
        if text.startswith("!-"):
            negative, text = True, text[2:]
        elif text.startswith("!!"):
            text = text[1:]
        else:
            raise BadRevision(rev, ":/! must be followed by - or !")
    try:
        # POSIX regexec without REG_NEWLINE: "." matches a newline as well.
        pattern = re.compile(text.encode("utf-8", "surrogateescape"), re.DOTALL)
    except re.error as e:
        raise BadRevision(rev, f"bad regular expression: {e}") from None
    if _nested_repeat(pattern.pattern):
        # git's regexec (glibc) does not backtrack; Python's re does, and "(a+)+b" against a
        # long message would take exponential time in a lookup: refused instead.
        raise BadRevision(rev, "a repeated group holding a repetition is not supported in :/")
    heap: list[tuple[int, int, bytes]] = []
    seen: set[bytes] = set()
    counter = 0
    starts = [r.oid for r in refs.list(root_refs=False) if r.oid is not None]
    head = refs.resolve("HEAD")
    if head is not None and head.oid is not None:
        starts.append(head.oid)
    for oid in starts:
        try:
            kind, raw = peel_tags(store, oid, rev)
        except (ObjectNotFound, CorruptObject):
            continue
        if kind != "commit" or raw in seen:
            continue
        seen.add(raw)
        commit = commit_of(store, raw)
        heapq.heappush(heap, (-commit_seconds(commit), counter, raw))
        counter += 1
    while heap:
        _, _, raw = heapq.heappop(heap)
        _, data = store.read(raw)
        end = data.find(b"\n\n")
        matched = end >= 0 and pattern.search(bytes(data[end + 2:])) is not None
        if matched != negative:
            return raw
        for parent in parse_commit(data, store.format, raw).parents:
            if parent in seen:
                continue
            seen.add(parent)
            try:
                commit = commit_of(store, parent)
            except ObjectNotFound:
                continue  # a shallow or damaged history: git skips what it cannot parse
            heapq.heappush(heap, (-commit_seconds(commit), counter, parent))
            counter += 1
    raise BadRevision(rev, "no commit's message matches")


def _nested_repeat(pattern: bytes) -> bool:
    """Does the expression repeat (more than once) something that itself repeats?"""
    try:
        from re import _parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import sre_parse
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}

    def walk(items, inside: bool) -> bool:
        stack = [(items, inside)]
        while stack:
            items, inside = stack.pop()
            for op, av in items:
                if op in repeats:
                    low, high, sub = av
                    many = high is sre_parse.MAXREPEAT or high > 1
                    if inside and many:
                        return True
                    stack.append((sub, inside or many))
                elif op is sre_parse.SUBPATTERN:
                    stack.append((av[-1], inside))
                elif op is sre_parse.BRANCH:
                    stack.extend((branch, inside) for branch in av[1])
                elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                    stack.append((av[1], inside))
                elif op is getattr(sre_parse, "ATOMIC_GROUP", None):
                    stack.append((av, inside))
        return False

    return walk(sre_parse.parse(pattern), False)
