"""git's revision language taken apart, before any repository is asked (see odb/revision.py).

An expression is a name, a reflog selector in `@{...}`, and suffixes (`~<n>`, `^<n>`, `^{kind}`)
applied left to right, or `:/<text>`; and how one path component (`.tree/<rev>`, `.log/<rev>`)
spells a revision, since "/" cannot be in one.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import BadRevision, ObjectNotFound

MAX_REVISION = 4096  # bytes of one expression (PATH_MAX: it came through a path, or a command line)
MAX_COUNT = (1 << 31) - 1  # git reads ~<n> and ^<n> into an int
SLASH_IN_COMPONENT = ":"
KINDS = ("commit", "tree", "blob", "tag")


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
