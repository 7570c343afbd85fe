"""The header lines of commit and tag objects: a commit's tree and dates, a tag's target."""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import CorruptObject
from ..oid import ObjectFormat

KINDS = ("commit", "tree", "blob", "tag")
MAX_SECONDS = (1 << 63) // 10**9  # beyond this a date cannot be an mtime in nanoseconds
# An ident's date, after its last ">": seconds and a "+hhmm" zone (ident.c split_ident_line).
_DATE = re.compile(rb">\s*(\d{1,20})(?:\s+([+-])(\d{4}))?\s*$")


class GitDate(NamedTuple):
    seconds: int
    offset_minutes: int  # east of UTC: "+0130" is 90


class Commit(NamedTuple):
    tree: bytes
    parents: tuple[bytes, ...]
    committer_date: GitDate | None
    author_date: GitDate | None


class Tag(NamedTuple):
    object: bytes
    kind: str  # what the tag says it points at; the object itself has the final word
    name: bytes | None
    tagger_date: GitDate | None


def _headers(data: bytes) -> list[bytes]:
    """The header lines, up to the blank line before the message (continuation lines of
    multi-line headers such as gpgsig start with a space and are kept as lines)."""
    end = data.find(b"\n\n")
    return (data if end < 0 else data[:end]).split(b"\n")


def _hex_id(value: bytes, fmt: ObjectFormat) -> bytes | None:
    if len(value) != fmt.hex_len:
        return None
    try:
        return bytes.fromhex(value.decode("ascii"))
    except ValueError:
        return None


def parse_date(ident: bytes) -> GitDate | None:
    """The date of an author, committer or tagger line's value; None if it has none git
    could read (git then says 0, which no mtime should pretend to be)."""
    m = _DATE.search(ident)
    if m is None:
        return None
    seconds = int(m.group(1))
    if seconds > MAX_SECONDS:
        return None
    offset = 0
    if m.group(2):
        hhmm = int(m.group(3))
        offset = (hhmm // 100) * 60 + hhmm % 100
        if m.group(2) == b"-":
            offset = -offset
    return GitDate(seconds, offset)


def parse_commit(data: bytes, fmt: ObjectFormat, oid: bytes | None = None) -> Commit:
    """commit.c parse_commit_buffer: "tree <id>" first, then "parent <id>" lines; the dates
    come from the author and committer lines when they are there."""
    lines = _headers(data)
    where = oid.hex() if oid else None
    tree = _hex_id(lines[0][5:], fmt) if lines[0].startswith(b"tree ") else None
    if tree is None:
        raise CorruptObject("commit object", 0, "bad tree pointer in commit", oid=where)
    parents = []
    i = 1
    while i < len(lines) and lines[i].startswith(b"parent "):
        parent = _hex_id(lines[i][7:], fmt)
        if parent is None:
            raise CorruptObject("commit object", None, "bad parent pointer in commit", oid=where)
        parents.append(parent)
        i += 1
    author = committer = None
    for line in lines[i:]:
        if line.startswith(b"author ") and author is None:
            author = parse_date(line[7:])
        elif line.startswith(b"committer ") and committer is None:
            committer = parse_date(line[10:])
    return Commit(tree, tuple(parents), committer, author)


def parse_tag(data: bytes, fmt: ObjectFormat, oid: bytes | None = None) -> Tag:
    """tag.c parse_tag_buffer: "object <id>", "type <kind>", then "tag <name>" and an
    optional tagger line."""
    lines = _headers(data)
    where = oid.hex() if oid else None
    target = _hex_id(lines[0][7:], fmt) if lines[0].startswith(b"object ") else None
    if target is None:
        raise CorruptObject("tag object", 0, "bad object pointer in tag", oid=where)
    kind = lines[1][5:].decode("ascii", "replace") if len(lines) > 1 and lines[1].startswith(b"type ") else None
    if kind not in KINDS:
        raise CorruptObject("tag object", None, "tag without a known type line", oid=where)
    name = tagger = None
    for line in lines[2:]:
        if line.startswith(b"tag ") and name is None:
            name = line[4:]
        elif line.startswith(b"tagger ") and tagger is None:
            tagger = parse_date(line[7:])
    return Tag(target, kind, name, tagger)
