"""A repository directory held open, so that a store follows it when it is moved (renamed).

A process that has a directory open keeps reading it wherever it is moved, as a shell whose
working directory was renamed does. The store names its files by path, so it keeps a descriptor
of each directory it was opened at and, when a path no longer leads to the directory held,
asks the kernel where that directory is now (/proc/self/fd/N names it by its current path). A
directory that was deleted has no path any more: the repository is gone, and says so.
"""

from __future__ import annotations

import os

from .errors import RepositoryGone, display_path

_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC


class Anchor:
    """One directory, by path and by descriptor."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, _FLAGS)
        st = os.fstat(self._fd)
        self._identity = (st.st_dev, st.st_ino)

    def moved(self) -> str | None:
        """The directory's new path if it was moved since the last look (self.path is then
        that path); None if its path still leads to it. RepositoryGone if it was deleted, or
        cannot be named."""
        if self._identity_at(self.path) == self._identity:
            return None
        if os.fstat(self._fd).st_nlink == 0:
            raise RepositoryGone(f"{display_path(self.path)} was deleted")
        try:
            now = os.readlink(f"/proc/self/fd/{self._fd}")
        except OSError:
            now = ""
        # A name with " (deleted)" appended, or none that leads back here (another namespace,
        # no /proc): nowhere to follow.
        if not now.startswith("/") or self._identity_at(now) != self._identity:
            raise RepositoryGone(f"{display_path(self.path)} was moved where it cannot be followed")
        self.path = now
        return now

    @staticmethod
    def _identity_at(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def proc_path(self) -> str:
        """The directory's name through this process's descriptor: valid wherever it moves."""
        return f"/proc/{os.getpid()}/fd/{self._fd}"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()
