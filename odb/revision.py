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

As one path component (`.tree/<rev>`, `.log/<rev>`), since "/" cannot be in one:
  - ":" stands for "/" (`.tree/feature:x` is `feature/x`, `.tree/refs:tags:v1.0~2`), except
    inside `@{...}` and `^{...}` (`.tree/main@{2020-01-01 10:00:00}` keeps its colons);
  - a component that starts with ":" is git's `:/<text>`, the rest taken as it is
    (`.tree/:fix the parser` is `:/fix the parser`).
No ref name can contain ":", "@{" or "^" (check_refname_format forbids them) and none starts
with "/", so every name that worked before keeps its meaning.
"""

from __future__ import annotations

import calendar
import heapq
import re
import time
from typing import NamedTuple

from .errors import AmbiguousPrefix, CorruptObject, ObjectNotFound
from .objects.object_headers import GitDate, parse_commit, parse_tag
from .oid import is_hex
from .refs.reflog import read_reflog, reflog_exists
from .refs.names import check_refname
from .refs import RefStore
from .store import MIN_PREFIX, Store

REF_RULES = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
MAX_TAG_DEPTH = 32  # git follows tag chains without a limit; a longer chain than this is refused
MAX_REVISION = 4096  # bytes of one expression (PATH_MAX: it came through a path, or a command line)
MAX_COUNT = (1 << 31) - 1  # git reads ~<n> and ^<n> into an int
SLASH_IN_COMPONENT = ":"
KINDS = ("commit", "tree", "blob", "tag")
# git's approxidate units, in seconds ("month" and "year" move the calendar instead).
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_AGO = re.compile(r"(\d+)[ .]+(second|minute|hour|day|week|month|year)s?[ .]+ago")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
                  r"(?: ?(z|[+-]\d{2}:?\d{2}))?")  # matched against the lower-cased text
_PRIOR = re.compile(r"@\{-(\d+)\}")


class NotTreeish(ObjectNotFound):
    """The revision names an object that peels to no tree (a blob, or a tag of one)."""

    def __init__(self, rev: str, kind: str):
        super().__init__(rev)
        self.args = (f"{rev} names a {kind}, which has no tree",)
        self.kind = kind


class BadRevision(ObjectNotFound):
    """An expression that names nothing, with the reason (unknown syntax, a reflog too short)."""

    def __init__(self, rev: str, reason: str):
        super().__init__(rev)
        self.args = (f"{rev}: {reason}",)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.oid, self.reason))


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


class Step(NamedTuple):
    """One suffix: "~" (n first parents), "^" (the nth parent), or "peel" (to kind, "" for ^{})."""

    op: str
    n: int
    kind: str


class Expression(NamedTuple):
    name: str  # the name before any @{...} and suffix ("" for "@{1}" alone)
    reflog: str | None  # what is inside <name>@{...}
    steps: tuple[Step, ...]  # applied left to right
    search: str | None  # the text of :/<text> (then nothing else is set)


# -- path components ----------------------------------------------------------------------------


def _braced(text: str) -> list[bool]:
    """For each character: is it inside git's "@{...}" or "^{...}"? A ref name holds neither
    "@{" nor "^", so its own "{" never counts, and the mapping stays one to one for them."""
    inside, out = False, []
    for i, c in enumerate(text):
        if not inside and c == "{" and i and text[i - 1] in "@^":
            inside = True
        out.append(inside)
        if inside and c == "}":
            inside = False
    return out


def encode_component(rev: str) -> str:
    """A ref name (or any revision) as one path component of `.tree/`."""
    if rev.startswith(":/"):
        return ":" + rev[2:]
    return "".join(SLASH_IN_COMPONENT if c == "/" and not braced else c for c, braced in zip(rev, _braced(rev)))


def decode_component(component: str | bytes) -> str:
    """The revision one path component spells (the rule is in the module's docstring); a
    component in bytes that is not UTF-8 names nothing (ObjectNotFound)."""
    if isinstance(component, bytes):
        try:
            component = component.decode()
        except UnicodeDecodeError:
            raise ObjectNotFound(repr(component)) from None
    if component.startswith(SLASH_IN_COMPONENT):
        return ":/" + component[1:]
    return "".join("/" if c == SLASH_IN_COMPONENT and not braced else c
                   for c, braced in zip(component, _braced(component)))


# -- parsing ---------------------------------------------------------------------------------------


def parse(rev: str) -> Expression:
    """The expression's parts, as get_oid_with_context_1 and get_oid_1 take it apart: from
    the end, one suffix at a time (a loop, not git's recursion). BadRevision if git would
    refuse it whatever the repository holds."""
    if len(rev.encode("utf-8", "surrogateescape")) > MAX_REVISION:
        raise BadRevision(rev[:64] + "...", f"longer than {MAX_REVISION} bytes")
    if rev.startswith(":/") and len(rev) > 2:
        return Expression("", None, (), rev[2:])
    if ":" in _outside_braces(rev):
        raise BadRevision(rev, "<rev>:<path> is not supported (name the path below .tree/<rev>)")
    steps: list[Step] = []
    s = rev
    while s:
        if s.endswith("}"):
            at = s.rfind("^{")
            if at < 0:
                break  # <name>@{...}: the name's business
            inside = s[at + 2:-1]
            if inside.startswith("/"):
                raise BadRevision(rev, "^{/<text>} is not supported (:/<text> is)")
            if inside not in ("", "object", *KINDS):
                raise BadRevision(rev, f"^{{{inside}}}: not a kind of object")
            steps.append(Step("peel", 0, inside))
            s = s[:at]
            continue
        end = len(s)
        while end and "0" <= s[end - 1] <= "9":
            end -= 1
        if end and s[end - 1] in "~^":
            digits = s[end:]
            if len(digits) > len(str(MAX_COUNT)):
                raise BadRevision(rev, f"{s[end - 1]}{digits[:12]}...: more than {MAX_COUNT}")
            n = int(digits) if digits else 1
            if n > MAX_COUNT:
                raise BadRevision(rev, f"{s[end - 1]}{digits}: more than {MAX_COUNT}")
            steps.append(Step(s[end - 1], n, ""))
            s = s[:end - 1]
            continue
        break
    if not s and steps:
        raise BadRevision(rev, "a suffix needs a name before it")
    name, reflog = s, None
    if s.endswith("}"):
        # get_oid_basic: the last "@{" ends the name; "@{-n}" only at the start.
        for at in range(len(s) - 4, -1, -1):
            if s.startswith("@{", at) and not s.startswith("@{-", at):
                name, reflog = s[:at], s[at + 2:-1]
                break
    if reflog is not None and reflog.lower() in ("u", "upstream", "push") or \
            reflog is not None and reflog.lower().startswith(("u}", "upstream}", "push}")):
        raise BadRevision(rev, "@{upstream} and @{push} are not supported")
    steps.reverse()
    return Expression(name, reflog, tuple(steps), None)


def _outside_braces(rev: str) -> str:
    return "".join(c for c, braced in zip(rev, _braced(rev)) if not braced)


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
    kind, raw = _peel_tags(store, named.oid, rev)
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


def parse_date(text: str, rev: str, now: float | None = None) -> int:
    """Seconds since the epoch of a date in `@{...}` (see the module docstring)."""
    try:
        return _parse_date(text, rev, int(time.time() if now is None else now))
    except (OverflowError, ValueError, OSError):
        raise BadRevision(rev, f"the date {text!r} is out of range") from None


def _parse_date(text: str, rev: str, now: int) -> int:
    t = text.strip().lower()
    if t == "now":
        return now
    if t == "yesterday":
        return now - 86400
    m = _AGO.fullmatch(t)
    if m and len(m.group(1)) > 12:
        raise BadRevision(rev, f"the date {text!r} is out of range")
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if unit in _UNITS:
            return now - n * _UNITS[unit]
        tm = time.localtime(now)
        months = n * (12 if unit == "year" else 1)
        year, month = divmod(tm.tm_year * 12 + tm.tm_mon - 1 - months, 12)
        return int(time.mktime((year, month + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, 0, 0, -1)))
    m = _ISO.fullmatch(t)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if m.group(4) is None:
            tm = time.localtime(now)  # approxidate keeps the time of day it did not read
            hour, minute, second = tm.tm_hour, tm.tm_min, tm.tm_sec
        else:
            hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            raise BadRevision(rev, f"{text!r} is not a date")
        fields = (year, month, day, hour, minute, second, 0, 0, -1)
        zone = m.group(7)
        if zone is None:
            return int(time.mktime(fields))
        seconds = calendar.timegm(fields)
        if zone == "z":
            return seconds
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        return seconds - offset if zone[0] == "+" else seconds + offset
    raise BadRevision(rev, f"cannot read the date {text!r} (seconds since 1970, YYYY-MM-DD HH:MM:SS, "
                           "or <n>.<unit>.ago)")


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
        kind, raw = _peel_tags(store, oid, rev)
        if step.kind in ("", kind):
            return raw
        if step.kind == "tree" and kind == "commit":
            return _commit(store, raw).tree
        raise BadRevision(rev, f"^{{{step.kind}}} of a {kind}")
    kind, raw = _peel_tags(store, oid, rev)
    if kind != "commit":
        raise BadRevision(rev, f"{step.op} of a {kind}")
    if step.op == "^":
        if step.n == 0:
            return raw
        parents = _commit(store, raw).parents
        if step.n > len(parents):
            raise BadRevision(rev, f"{raw.hex()} has {len(parents)} parents, not {step.n}")
        return parents[step.n - 1]
    for _ in range(step.n):
        parents = _commit(store, raw).parents
        if not parents:
            raise BadRevision(rev, f"{raw.hex()} has no parent: the history is shorter")
        raw = parents[0]
    return raw


def _commit(store: Store, raw: bytes):
    kind, data = store.read(raw)
    if kind != "commit":
        raise CorruptObject("commit object", None, f"a parent is a {kind}", oid=raw.hex())
    return parse_commit(data, store.format, raw)


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
            kind, raw = _peel_tags(store, oid, rev)
        except (ObjectNotFound, CorruptObject):
            continue
        if kind != "commit" or raw in seen:
            continue
        seen.add(raw)
        commit = _commit(store, raw)
        heapq.heappush(heap, (-_seconds(commit), counter, raw))
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
                commit = _commit(store, parent)
            except ObjectNotFound:
                continue  # a shallow or damaged history: git skips what it cannot parse
            heapq.heappush(heap, (-_seconds(commit), counter, parent))
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


def _seconds(commit) -> int:
    return commit.committer_date.seconds if commit.committer_date is not None else 0


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
        fitting = [c for c in e.candidates if _peels_to(store, bytes.fromhex(c), wanted)]
        if len(fitting) != 1:
            raise
        return bytes.fromhex(fitting[0])


def _peels_to(store: Store, raw: bytes, kinds: tuple[str, ...]) -> bool:
    """object-name.c disambiguate_treeish_only / committish_only: the object, tags peeled,
    is one of kinds."""
    try:
        kind, raw = _peel_tags(store, raw, raw.hex())
    except (ObjectNotFound, CorruptObject):
        return False
    return kind in kinds


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
        commit = _commit(store, raw)
        return commit.tree, raw, commit.committer_date
    raise NotTreeish(rev, kind)
