"""The exceptions of the object database: not found, ambiguous, corrupt, not readable."""

from __future__ import annotations


class OdbError(Exception):
    """Base class of every error the object database raises."""


class NotARepository(OdbError):
    """The path given to odb.open() holds no git object database."""


class AccessDenied(OdbError):
    """A repository file or directory exists but this process may not read it (EACCES/EPERM)."""

    def __init__(self, path):
        super().__init__(f"{path}: permission denied")
        self.path = path


class ObjectNotFound(OdbError):
    """No source holds the requested object."""

    def __init__(self, oid: str):
        super().__init__(f"object {oid} not found")
        self.oid = oid


class AmbiguousPrefix(OdbError):
    """An abbreviated id matches more than one object."""

    def __init__(self, prefix: str, candidates: list[str]):
        shown = ", ".join(candidates[:8]) + (" ..." if len(candidates) > 8 else "")
        super().__init__(f"short id {prefix} is ambiguous: {shown}")
        self.prefix = prefix
        self.candidates = candidates


class CorruptObject(OdbError):
    """Bytes on disk that contradict their format.

    Carries the file and the byte offset so that a log line points at the damage.
    """

    def __init__(self, path, offset: int | None, reason: str, oid: str | None = None):
        where = f"{path}" if offset is None else f"{path} at offset {offset}"
        what = f"object {oid}: " if oid else ""
        super().__init__(f"{what}{reason} ({where})")
        self.path = path
        self.offset = offset
        self.reason = reason
        self.oid = oid
