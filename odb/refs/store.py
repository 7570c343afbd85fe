"""Every ref of a repository as git sees it: loose files, packed-refs or reftable, and symrefs.

    refs = RefStore(git_dir, common_dir, fmt)
    refs.list()                 # [Ref(name, oid, target, peeled)], sorted as for-each-ref sorts
    refs.list("refs/tags/")     # the refs of one directory
    refs.read("HEAD")           # one level: a symref comes back with its target and oid None
    refs.resolve("HEAD")        # symrefs followed (at most 5 reads, as git); None if dangling;
                                # target is then the chain's last name, as `git symbolic-ref`
    refs.head()                 # resolve("HEAD")

Nothing is cached beyond one call except parsed files filed under their stat identity
(packed-refs, reftable tables), so a ref git has just written is seen by the next call.
A ref that exists but cannot be read (bad contents, too big, not a regular file, a symlink
loop, a name git refuses) is left out, with one warning per file and reason.
"""

from __future__ import annotations

import os
import time

from ..mapped_file import open_regular
from ..oid import ObjectFormat
from .files_backend import FilesBackend
from .names import check_refname, sort_key
from .ref import Broken, Ref, _warn
from .reftable_backend import ReftableBackend

__all__ = ["Ref", "RefStore", "config_value", "ref_storage"]

RACY_NS = 100_000_000  # a file changed this recently may change again within its mtime
SYMREF_MAXDEPTH = 5  # refs-internal.h: reads of one resolve, the last one giving the id


class RefStore:
    """The refs of one repository (or linked worktree). git_dir holds HEAD and the
    per-worktree refs; common_dir (git_dir when None) holds everything else.

    Broken loose refs are left out with a warning, and a bad packed-refs is ignored with one
    (git dies on it; the loose refs are still right). A damaged reftable raises CorruptObject
    from every call: leaving a table out could bring back refs it deletes.
    """

    def __init__(self, git_dir, common_dir=None, fmt: ObjectFormat | None = None):
        from ..oid import SHA1

        self.format = fmt or SHA1
        self.relocate(git_dir, common_dir)

    def relocate(self, git_dir, common_dir=None) -> None:
        """Reads the refs at git_dir (and common_dir) from now on: the repository moved."""
        git_dir = os.fspath(git_dir)
        common_dir = os.fspath(common_dir) if common_dir is not None else git_dir
        storage = ref_storage(common_dir)
        backend = ReftableBackend if storage == "reftable" else FilesBackend
        self.backend = backend(git_dir, common_dir, self.format)
        self.git_dir, self.common_dir, self.storage = git_dir, common_dir, storage

    def read(self, name: str) -> Ref | None:
        """The ref as stored, one level; None if it does not exist, is broken, or name is
        not a valid ref name (git never touches a file for those)."""
        if not check_refname(name):
            return None
        try:
            return self.backend.read(name)
        except Broken as e:
            _warn(e.path, e.reason)
            return None

    def resolve(self, name: str) -> Ref | None:
        """name with its symrefs followed, as refs_resolve_ref_unsafe(RESOLVE_REF_READING):
        at most SYMREF_MAXDEPTH reads; None if missing, broken, dangling or deeper. For a
        symref, target is the last name of the chain, as `git symbolic-ref` prints it."""
        first = self.read(name)
        if first is None or first.target is None:
            return first
        final, final_name = self._follow(first)
        if final is None:
            return None
        return Ref(name, final.oid, final_name, final.peeled)

    def _follow(self, ref: Ref) -> tuple[Ref | None, str | None]:
        """(the ref at the end of ref's chain or None, the chain's last name or None when the
        chain is longer than git follows)."""
        name = ref.target
        for _ in range(SYMREF_MAXDEPTH - 1):
            ref = self.read(name)
            if ref is None or ref.target is None:
                return ref, name
            name = ref.target
        return None, None

    def head(self) -> Ref | None:
        return self.resolve("HEAD")

    def fingerprint(self, watched: list[str] | None = None) -> tuple | None:
        """The stat identities of what a listing reads (backend.watched(), or watched as it was
        before that listing): equal fingerprints mean list() would give the same refs. None when
        a file changed within RACY_NS, since a change in the same clock tick keeps the mtime
        (git's racy-timestamp problem): the caller then lists again."""
        now = time.time_ns()
        out = []
        for path in watched if watched is not None else self.backend.watched():
            try:
                st = os.stat(path)
            except OSError:
                out.append(None)
                continue
            if now - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
                return None
            out.append((st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(out)

    def list(self, prefix: str = "", *, root_refs: bool = True) -> list[Ref]:
        """Every ref (under prefix, a directory such as "refs/tags/", when given), sorted by
        name bytes as `git for-each-ref` (with root_refs and no prefix, the root refs such as
        HEAD too, as newer git's `for-each-ref --include-root-refs`).

        Symbolic refs carry the id they resolve to, or None when that is missing (for-each-ref
        leaves those out; a mount can show them as dangling links), and as target the last
        name of their chain (for-each-ref's %(symref); read() gives the first one).
        Unlike for-each-ref, refs naming objects the store lacks are kept: this module
        knows no objects.
        """
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"a ref prefix is a directory ending in '/', not {prefix!r}")
        out = []
        for ref in self.backend.raw_refs(prefix, root_refs=root_refs):
            if isinstance(ref, Broken):
                _warn(ref.path, ref.reason)
                continue
            if ref.target is not None:
                final, final_name = self._follow(ref)
                ref = Ref(ref.name, final.oid if final else None, final_name or ref.target)
            out.append(ref)
        out.sort(key=lambda r: sort_key(r.name))
        return out


def ref_storage(common_dir: str) -> str:
    """extensions.refStorage of the repository's config: "files" (the default) or "reftable"."""
    value = config_value(os.path.join(common_dir, "config"), "extensions", "refstorage")
    return (value or "files").lower()


MAX_CONFIG = 1 << 20


def config_value(path: str, section: str, key: str) -> str | None:
    """The last value of section.key in a git config file (enough of git's syntax for the
    extensions section: [section], key = value, comments, quotes); None if unset."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_CONFIG)
    finally:
        os.close(fd)
    current = None
    value = None
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = line[1:].split("]", 1)[0].strip()
            current = header.split(None, 1)[0].lower() if header else ""
            rest = line.split("]", 1)[1].strip() if "]" in line else ""
            if not rest:
                continue
            line = rest
        if current != section:
            continue
        name, eq, raw = line.partition("=")
        if name.strip().lower() != key:
            continue
        raw = raw.split("#", 1)[0].split(";", 1)[0].strip() if eq else "true"
        value = raw.strip('"')
    return value
