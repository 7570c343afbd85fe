"""The alternates list (objects/info/alternates, GIT_ALTERNATE_OBJECT_DIRECTORIES): git's format.

Entries one per line (or split by ":" in the variable), "#" comments, C-quoted entries decoded as
git's unquote_c_style does, relative ones taken from the objects directory. Which of them are
opened, and in what order, is alternates.py.
"""

from __future__ import annotations

import logging
import os

from .errors import FileTooLarge, display_path
from .mapped_file import read_bounded
from .refused_paths import SelfReference, resolve

log = logging.getLogger("odb")

# git reads an alternates file whole, with no limit below INT_MAX; real ones name a handful of
# directories. This limit leaves a wide margin and keeps a hostile file's cost bounded.
MAX_ALTERNATES = 1 << 20


C_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11,
             ord("\\"): ord("\\"), ord('"'): ord('"')}


def unquote_c_style(data: bytes, start: int) -> tuple[bytes, int] | None:
    """git's unquote_c_style: the string quoted at data[start] ('"'), and the index just past
    its closing quote; None if the quoting is broken (then git reads the entry as it stands)."""
    out = bytearray()
    i = start + 1
    n = len(data)
    while i < n:
        c = data[i]
        i += 1
        if c == 0x22:  # the closing quote
            return bytes(out), i
        if c != 0x5C:
            out.append(c)
            continue
        if i >= n:
            return None
        c = data[i]
        i += 1
        if c in C_ESCAPES:
            out.append(C_ESCAPES[c])
        elif 0x30 <= c <= 0x33:  # three octal digits; a first digit over 3 would overflow
            digits = data[i - 1 : i + 2]
            if len(digits) < 3 or not all(0x30 <= d <= 0x37 for d in digits):
                return None
            out.append(int(digits, 8))
            i += 2
        else:
            return None
    return None


def parse_alternates(data: bytes, sep: bytes, relative_base: str | None) -> list[str]:
    """git's parse_alternates: entries split by sep, '#' comments, C-quoted entries decoded,
    relative ones taken from relative_base, each made real (trailing slashes dropped)."""
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]  # git parses the file as a C string
    out = []
    pos, n = 0, len(data)
    while pos < n:
        quoted = unquote_c_style(data, pos) if data[pos : pos + 1] == b'"' else None
        if data[pos : pos + 1] == b"#":
            end = data.find(sep, pos)
            entry, end = b"", n if end < 0 else end
        elif quoted is not None:
            entry, end = quoted
        else:
            end = data.find(sep, pos)
            end = n if end < 0 else end
            entry = data[pos:end]
        pos = end + 1  # past the separator (or whatever follows a closing quote, as in git)
        if not entry:
            continue
        path = os.fsdecode(entry)
        if not path.startswith("/") and relative_base is not None:
            path = resolve(relative_base) + "/" + path
        try:
            path = resolve(path).rstrip("/") or "/"
        except SelfReference:
            pass  # left as it is: the store refuses it, and says so
        except OSError:
            continue  # git: "unable to normalize alternate object path"
        out.append(path)
    return out


def read_alternates(objects_dir: str) -> list[str]:
    """The alternate objects directories listed by objects/info/alternates, made real."""
    path = os.path.join(objects_dir, "info", "alternates")
    try:
        data = read_bounded(path, MAX_ALTERNATES)
    except FileNotFoundError:
        return []
    except FileTooLarge as e:
        log.warning("ignoring the alternates file %s", e)
        return []
    except OSError as e:
        log.warning("ignoring the alternates file %s: %s", display_path(path), e.strerror)
        return []
    return parse_alternates(data, b"\n", objects_dir)
