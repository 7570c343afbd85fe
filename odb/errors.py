"""The exceptions of the object database: not found, ambiguous, corrupt, not allowed, too large."""

from __future__ import annotations

import errno
import os


def display_path(path) -> str:
    """A path as text that can always be printed or logged: any bytes, any encoding.

    Paths are bytes to the kernel. Python hands undecodable bytes back as lone surrogates
    (surrogateescape), which no UTF-8 stream accepts; they are shown as \\xNN here, so an
    error message about a path never raises an encoding error of its own.
    """
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


class OdbError(Exception):
    """Base class of every error the object database raises."""


class NotARepository(OdbError):
    """The path given to odb.open() holds no git object database."""


class RepositoryGone(OdbError):
    """The repository a store was opened at was deleted while open (a rename is followed)."""


class AccessDenied(OdbError):
    """A repository file or directory exists, but this process may not read it (EACCES, EPERM)."""

    def __init__(self, path):
        super().__init__(f"{display_path(path)}: permission denied")
        self.path = path

    def __reduce__(self):
        return type(self), (self.path,)


class ObjectNotFound(OdbError):
    """No source holds the requested object."""

    def __init__(self, oid: str):
        super().__init__(f"object {oid} not found")
        self.oid = oid

    def __reduce__(self):  # pickled whole: the mount's helper processes send errors back
        return type(self), (self.oid,)


class AmbiguousPrefix(OdbError):
    """An abbreviated id matches more than one object."""

    def __init__(self, prefix: str, candidates: list[str]):
        shown = ", ".join(candidates[:8]) + (" ..." if len(candidates) > 8 else "")
        super().__init__(f"short id {prefix} is ambiguous: {shown}")
        self.prefix = prefix
        self.candidates = candidates

    def __reduce__(self):
        return type(self), (self.prefix, self.candidates)


class CorruptObject(OdbError):
    """Bytes on disk that contradict their format.

    Carries the file and the byte offset so that a log line points at the damage.
    """

    def __init__(self, path, offset: int | None, reason: str, oid: str | None = None):
        shown = display_path(path)
        where = shown if offset is None else f"{shown} at offset {offset}"
        what = f"object {oid}: " if oid else ""
        super().__init__(f"{what}{reason} ({where})")
        self.path = path
        self.offset = offset
        self.reason = reason
        self.oid = oid

    def __reduce__(self):
        return type(self), (self.path, self.offset, self.reason, self.oid)

class BadRevision(ObjectNotFound):
    """An expression that names nothing, with the reason (unknown syntax, a reflog too short)."""

    def __init__(self, rev: str, reason: str):
        super().__init__(rev)
        self.args = (f"{rev}: {reason}",)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.oid, self.reason))


class FileTooLarge(OSError):
    """A metadata file is larger than the limit it is read with (mapped_file.read_bounded).

    An OSError (EFBIG), so that callers which treat an unreadable file as absent keep doing so;
    those that must not guess (the config, a .git file) turn it into NotARepository.
    """

    def __init__(self, path, limit: int):
        super().__init__(errno.EFBIG, f"larger than {limit} bytes", path)
        self.limit = limit

    def __str__(self) -> str:
        return f"{display_path(self.filename)}: {self.strerror}"
