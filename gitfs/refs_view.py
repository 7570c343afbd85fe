"""MNT/.refs: HEAD and every ref, as symlinks to the objects they name, re-read at every look.

A ref appears under its full name without "refs/" (.refs/heads/main, .refs/tags/v1.0), root refs
such as HEAD at the top. A ref is a relative symlink to its object's file (../../ab/cdef...), so
`cat .refs/heads/main` prints the commit; a symbolic ref (HEAD, remotes/origin/HEAD) is a symlink
to the ref it names. Refs change at any time: nothing is cached, every listing and lookup reads
them again (odb.RefStore), and the kernel keeps their entries for DIRECTORY_TIMEOUT only.
"""

from __future__ import annotations

import logging
import posixpath
from typing import NamedTuple

log = logging.getLogger("gitfs")

PREFIX = "refs/"


class RefsDir(NamedTuple):
    """A directory of .refs: "" for .refs itself, "heads", "remotes/origin"..."""

    path: str


class RefLink(NamedTuple):
    name: str  # as shown: "HEAD", "heads/main"


def shown(full_name: str) -> str:
    """A ref's name in .refs: "refs/heads/main" -> "heads/main"; root refs stay as they are."""
    return full_name[len(PREFIX):] if full_name.startswith(PREFIX) else full_name


class RefsView:
    """The refs namespace: nodes to entries, for the view (gitfs/view.py). Runs in threads."""

    def __init__(self, refs, fmt):
        self.refs = refs
        self.hex_len = fmt.hex_len

    def _tree(self) -> tuple[dict[str, set[str]], dict[str, object]]:
        """(directory -> names in it, shown name -> Ref), from one read of every ref."""
        dirs: dict[str, set[str]] = {"": set()}
        links: dict[str, object] = {}
        for ref in self.refs.list():
            name = shown(ref.name)
            if name in links or name in dirs:
                log.warning(".refs: %s is shown once only (as %s)", ref.name, name)
                continue
            parts = name.split("/")
            for depth in range(1, len(parts)):
                parent, child = "/".join(parts[: depth - 1]), parts[depth - 1]
                here = "/".join(parts[:depth])
                if here in links:  # a ref and a directory of refs with one name: git forbids it
                    break
                dirs.setdefault(parent, set()).add(child)
                dirs.setdefault(here, set())
            else:
                dirs.setdefault("/".join(parts[:-1]), set()).add(parts[-1])
                links[name] = ref
        return dirs, links

    def lookup(self, node: RefsDir, name: bytes):
        """The node that name is in directory node, or None."""
        try:
            text = name.decode()
        except UnicodeDecodeError:
            return None
        path = posixpath.join(node.path, text) if node.path else text
        dirs, links = self._tree()
        if path in links:
            return RefLink(path)
        if path in dirs:
            return RefsDir(path)
        return None

    def list(self, node: RefsDir) -> list[tuple[bytes, object]] | None:
        """(name, node) of the directory's entries, sorted; None if it is gone."""
        dirs, links = self._tree()
        names = dirs.get(node.path)
        if names is None:
            return None
        out = []
        for child in sorted(names):
            path = posixpath.join(node.path, child) if node.path else child
            out.append((child.encode(), RefLink(path) if path in links else RefsDir(path)))
        return out

    def exists(self, node) -> bool:
        dirs, links = self._tree()
        return node.path in dirs if isinstance(node, RefsDir) else node.name in links

    def target(self, link: RefLink) -> bytes | None:
        """Where the link points, relative to its directory; None if the ref is gone."""
        listed = self._tree()[1].get(link.name)
        if listed is None:
            return None
        # list() follows symbolic refs to the end; the link shows the first step, as git's
        # `symbolic-ref --no-recurse` does (HEAD -> heads/main).
        ref = self.refs.read(listed.name) or listed
        if ref.target is not None:
            here = posixpath.dirname(link.name)
            return posixpath.relpath(shown(ref.target), here or ".").encode()
        up = "../" * (link.name.count("/") + 1)  # out of .refs and its subdirectories
        hex_id = ref.oid.hex()
        return f"{up}{hex_id[:2]}/{hex_id[2:]}".encode()
