"""The packed-refs file: "<id> <name>" lines, each maybe followed by a "^<peeled id>" line."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from ..errors import CorruptObject
from ..mapped_file import file_identity, open_regular, read_all
from ..oid import ObjectFormat
from .names import check_refname, sort_key

# git mmaps packed-refs whatever its size; we hold it parsed, so a file past this size is
# refused rather than read (android's 866k refs take 62 MB).
MAX_PACKED_REFS = 256 << 20
HEADER = b"# pack-refs with: "


class PackedRef(NamedTuple):
    oid: bytes
    peeled: bytes | None  # the object an annotated tag peels to, when the file records it


class PackedRefs:
    """A parsed packed-refs file: name -> PackedRef, and the names in git's order."""

    def __init__(self, refs: dict[str, PackedRef], skipped: list[tuple[str, str]]):
        self.refs = refs
        self.names = sorted(refs, key=sort_key)
        self.skipped = skipped  # (name, why) of lines git would treat as broken refs


EMPTY = PackedRefs({}, [])


def _line_pattern(fmt: ObjectFormat) -> re.Pattern:
    hexes = b"[0-9a-fA-F]{%d}" % fmt.hex_len
    # packed-backend.c next_record: the id, one whitespace byte, the name up to LF; then an
    # optional "^<id>" LF. Anything else in the file is an invalid line, and git dies on it.
    return re.compile(b"(" + hexes + b")[ \t\r]([^\n]*)\n(?:\\^(" + hexes + b")\n)?")


def parse(data: bytes, fmt: ObjectFormat, path: str) -> PackedRefs:
    """Parses the whole file; CorruptObject on any line git would refuse."""
    pos = 0
    if data.startswith(b"#"):
        eol = data.find(b"\n")
        if eol < 0 or not data.startswith(HEADER):
            raise CorruptObject(path, 0, "packed-refs header is not '# pack-refs with: ...'")
        pos = eol + 1
    line = _line_pattern(fmt)
    refs: dict[str, PackedRef] = {}
    skipped = []
    end = len(data)
    while pos < end:
        m = line.match(data, pos)
        if m is None:
            why = "unterminated line" if data.find(b"\n", pos) < 0 else "invalid line"
            raise CorruptObject(path, pos, f"packed-refs: {why}")
        oid_hex, raw_name, peeled_hex = m.groups()
        if b"\0" in raw_name:
            raise CorruptObject(path, pos, "packed-refs: ref name contains NUL")
        name = os.fsdecode(raw_name)
        if not check_refname(name):
            skipped.append((name, "not a valid ref name"))
        elif name not in refs:  # git's bisect finds one of duplicates; keep the first
            refs[name] = PackedRef(bytes.fromhex(oid_hex.decode()),
                                   bytes.fromhex(peeled_hex.decode()) if peeled_hex else None)
        pos = m.end()
    return PackedRefs(refs, skipped)


class PackedRefsFile:
    """One packed-refs path, re-parsed only when its stat identity changes.

    git rewrites packed-refs by rename, so a new identity means new contents; reading the
    descriptor we stat keeps the cached parse and the identity it is filed under in step.
    """

    def __init__(self, path: str, fmt: ObjectFormat):
        self.path = path
        self.format = fmt
        # (stat identity, what was read): one attribute, so that a reader on another thread
        # never pairs a new identity with an old parse.
        self._cache: tuple[tuple | None, PackedRefs | CorruptObject] = (None, EMPTY)

    def load(self) -> PackedRefs:
        """The current contents; EMPTY when there is no file. CorruptObject or OSError when
        the file is there but cannot be used (the caller decides what that means)."""
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._cache = (None, EMPTY)
            return EMPTY
        cache = self._cache
        if file_identity(st) != cache[0]:
            cache = self._cache = self._read()
        parsed = cache[1]
        if isinstance(parsed, CorruptObject):
            # A bad file stays refused, without re-reading it, until replaced. A fresh error
            # each time: re-raising one instance would grow its traceback at every call.
            raise CorruptObject(parsed.path, parsed.offset, parsed.reason)
        return parsed

    def _read(self) -> tuple[tuple | None, PackedRefs | CorruptObject]:
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            return None, EMPTY
        try:
            st = os.fstat(fd)
            if st.st_size > MAX_PACKED_REFS:
                return file_identity(st), CorruptObject(
                    self.path, None, f"packed-refs is {st.st_size} bytes, more than {MAX_PACKED_REFS}")
            data = read_all(fd, st.st_size)
        finally:
            os.close(fd)
        try:
            return file_identity(st), parse(data, self.format, self.path)
        except CorruptObject as e:
            return file_identity(st), e
