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

import errno
import logging
import os
import stat
import time
from typing import Iterator, NamedTuple

from ..errors import CorruptObject
from ..mapped_file import open_regular
from ..oid import ObjectFormat
from .packed import PackedRefsFile
from .names import (PER_WORKTREE_PREFIXES, PSEUDO_REFS, check_refname, is_root_ref,
                      parse_worktree_ref, sort_key)
from .reftable import ReftableStack

log = logging.getLogger("odb")

RACY_NS = 100_000_000  # a file changed this recently may change again within its mtime
SYMREF_MAXDEPTH = 5  # refs-internal.h: reads of one resolve, the last one giving the id
# git reads a loose ref whole; a valid one is "ref: " and a name below the git dir, so it
# stays under PATH_MAX (4096). Bigger files are refused rather than read.
MAX_LOOSE_REF = 4096 + 64
SPACE = b" \t\n\r"  # git's isspace
MAX_WARNINGS = 1000


class Ref(NamedTuple):
    """A ref. For a symbolic ref, target is the name it points at (read: the next name of
    the chain; list and resolve: the last) and oid is what it resolves to (None while that
    is missing: an unborn branch). Ids are raw bytes."""

    name: str
    oid: bytes | None
    target: str | None = None
    peeled: bytes | None = None  # an annotated tag's object, when packed-refs or reftable record it


class Broken(Exception):
    """A ref that is there but that git would not use (kept inside this module)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_warned: set[tuple[str, str]] = set()


def _warn(path: str, reason: str) -> None:
    """Refs are re-read on every call; a broken one is logged once, not at every listing."""
    key = (path, reason)
    if key in _warned:
        return
    if len(_warned) >= MAX_WARNINGS:
        _warned.clear()
    _warned.add(key)
    log.warning("ignoring ref %s: %s", path, reason)


def parse_loose(data: bytes, fmt: ObjectFormat, path: str, name: str) -> Ref:
    """files-backend.c parse_loose_ref_contents: "ref: <name>" or an id, then maybe more
    after whitespace (FETCH_HEAD has more); anything else is a broken ref."""
    data = data.rstrip(SPACE)
    if data.startswith(b"ref:"):
        return Ref(name, None, os.fsdecode(data[4:].lstrip(SPACE)))
    hex_id, rest = data[: fmt.hex_len], data[fmt.hex_len:]
    if len(hex_id) != fmt.hex_len or (rest and rest[0] not in SPACE):
        raise Broken(path, "neither an object id nor 'ref: <name>'")
    try:
        oid = bytes.fromhex(hex_id.decode("ascii"))
    except ValueError:
        raise Broken(path, "neither an object id nor 'ref: <name>'") from None
    if not any(oid):
        raise Broken(path, "the null object id")  # files-backend.c counts it as corruption
    return Ref(name, oid)


def read_ref_file(path: str, fmt: ObjectFormat, name: str, *, pseudo: bool = False) -> Ref:
    """One loose ref file, opened without blocking (a FIFO is refused) and read with a limit.
    Pseudo refs (FETCH_HEAD) may be long; only their first id matters."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Broken(path, "symlink loop") from None
        raise Broken(path, e.strerror or str(e)) from None
    try:
        data = os.read(fd, MAX_LOOSE_REF + 1)
    except OSError as e:
        raise Broken(path, e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_LOOSE_REF:
        if not pseudo:
            raise Broken(path, f"more than {MAX_LOOSE_REF} bytes")
        data = data[: data.find(b"\n") + 1 or None]
    return parse_loose(data, fmt, path, name)


class FilesBackend:
    """Loose ref files over packed-refs, as git's files backend: a loose file (even a
    broken one) hides the packed entry of the same name; a directory does not."""

    def __init__(self, git_dir: str, common_dir: str, fmt: ObjectFormat):
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.format = fmt
        self.packed = PackedRefsFile(os.path.join(common_dir, "packed-refs"), fmt)
        self.listed_dirs: set[str] = set()  # directories the last listing looked in

    def watched(self) -> list[str]:
        """What a listing reads, to stat for a change (fingerprint): a ref written or deleted
        changes its directory's mtime (git renames a lock file into place), a new directory its
        parent's, a root ref the git dir's, and packed-refs is replaced whole."""
        return [self.packed.path, self.git_dir, *sorted(self.listed_dirs)]

    def path(self, name: str) -> str:
        """files-backend.c files_ref_path: per-worktree names live in this worktree's git dir."""
        where = parse_worktree_ref(name)
        if where.kind == "current":
            return os.path.join(self.git_dir, name)
        if where.kind == "other":
            return os.path.join(self.common_dir, "worktrees", where.worktree, where.bare)
        return os.path.join(self.common_dir, where.bare)

    def _packed(self) -> dict:
        try:
            return self.packed.load().refs
        except (CorruptObject, OSError) as e:
            # git dies on a bad packed-refs. Loose refs are still right, so they are served;
            # the packed ones are missing until the file is fixed.
            _warn(self.packed.path, str(e))
            return {}

    def read(self, name: str) -> Ref | None:
        """One level of name (check_refname first). Broken when git would call it broken."""
        path = self.path(name)
        for _ in range(3):  # files-backend.c retries when the file changes type under it
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return self._from_packed(name)
            except OSError as e:
                raise Broken(path, e.strerror or str(e)) from None
            if stat.S_ISDIR(st.st_mode):
                return self._from_packed(name)
            if stat.S_ISLNK(st.st_mode):
                try:
                    text = os.readlink(path)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise Broken(path, e.strerror or str(e)) from None
                # A symlink to "refs/..." is how old git wrote symrefs; any other link is
                # followed and its file read.
                if text.startswith("refs/") and check_refname(text, allow_onelevel=False):
                    return Ref(name, None, text)
            try:
                return read_ref_file(path, self.format, name, pseudo=name in PSEUDO_REFS)
            except FileNotFoundError:
                if stat.S_ISLNK(st.st_mode):
                    raise Broken(path, "dangling symlink") from None
                continue
        raise Broken(path, "keeps changing while read")

    def _from_packed(self, name: str) -> Ref | None:
        entry = self._packed().get(name)
        return None if entry is None else Ref(name, entry.oid, None, entry.peeled)

    # -- listing -------------------------------------------------------------------------

    def loose_names(self, start: str = "refs/") -> Iterator[str]:
        """Names of loose ref files under start (a directory of refs/, ending in "/"), as
        files-backend.c loose_fill_ref_dir finds them: dot files and *.lock skipped,
        symlinks followed, each directory once."""
        seen_dirs = set()
        stack = [start]
        while stack:
            dirname = stack.pop()
            path = self.path(dirname)
            self.listed_dirs.add(path)
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) in seen_dirs:
                    _warn(path, "directory seen twice (a symlink loop)")
                    continue
                seen_dirs.add((st.st_dev, st.st_ino))
                with os.scandir(path) as it:
                    entries = [e.name for e in it]
            except OSError:
                continue
            if dirname == "refs/":
                # The per-worktree namespaces come from this worktree's git dir, whether or
                # not the common refs/ has them.
                entries = [e for e in entries if f"refs/{e}/" not in PER_WORKTREE_PREFIXES]
                stack.extend(PER_WORKTREE_PREFIXES)
            for entry in entries:
                if entry.startswith(".") or entry.endswith(".lock"):
                    continue
                name = dirname + entry
                kind = self._kind(self.path(name))
                if kind == "dir":
                    stack.append(name + "/")
                elif kind is not None:
                    yield name

    def root_names(self) -> Iterator[str]:
        """Root refs (HEAD, ORIG_HEAD, ...) that are files in this worktree's git dir."""
        try:
            with os.scandir(self.git_dir) as it:
                names = [e.name for e in it]
        except OSError:
            return
        for name in names:
            if is_root_ref(name) and self._kind(os.path.join(self.git_dir, name)) is not None:
                yield name

    @staticmethod
    def _kind(path: str) -> str | None:
        """"dir", "ref" (anything else that is there: read() decides if it is usable), or None.

        Like files-backend.c get_dtype, this follows symlinks: one that leads nowhere is not
        listed (even a symref-style link, whose target is a ref name, not a path: git's
        listing misses those too, though read() understands them).
        """
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                _warn(path, "symlink loop")
            return None
        return "dir" if stat.S_ISDIR(st.st_mode) else "ref"

    def raw_refs(self, prefix: str, *, root_refs: bool) -> Iterator[Ref | Broken]:
        """Every ref under prefix, one level, in no particular order; a Broken for each
        broken one. Root refs only with root_refs and an empty prefix."""
        # Loose refs are read before packed-refs, as git does: a ref being packed meanwhile
        # is then found in one or the other.
        loose = list(self.loose_names(prefix if prefix.startswith("refs/") else "refs/"))
        if root_refs and not prefix:
            loose += self.root_names()
        loose = [name for name in loose if name.startswith(prefix)]
        seen = set()
        for name in loose:
            seen.add(name)
            try:
                if not check_refname(name):
                    raise Broken(self.path(name), "not a valid ref name")
                ref = self.read(name)
            except Broken as e:
                yield e
                continue
            if ref is not None:
                yield ref
        packed = self._packed()
        for name, entry in packed.items():
            if name not in seen and name.startswith(prefix) and (root_refs or name.startswith("refs/")):
                yield Ref(name, entry.oid, None, entry.peeled)


class ReftableBackend:
    """extensions.refStorage=reftable: the common stack, and a linked worktree's own stack
    for its per-worktree refs (reftable-backend.c). Pseudo refs stay files in the git dir."""

    def __init__(self, git_dir: str, common_dir: str, fmt: ObjectFormat):
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.format = fmt
        self.main = ReftableStack(os.path.join(common_dir, "reftable"), fmt)
        self.worktree = None
        if os.path.realpath(git_dir) != os.path.realpath(common_dir):
            self.worktree = ReftableStack(os.path.join(git_dir, "reftable"), fmt)
        self._others: dict[str, ReftableStack] = {}

    def watched(self) -> list[str]:
        """What a listing reads, to stat for a change (fingerprint): the stacks' tables.list,
        replaced whole at every write, and the git dir (pseudo refs)."""
        stacks = [self.main] if self.worktree is None else [self.main, self.worktree]
        return [*(stack.list_path for stack in stacks), self.git_dir]

    def _stack_for(self, name: str) -> tuple[ReftableStack, str]:
        where = parse_worktree_ref(name)
        if where.kind == "current":
            return self.worktree or self.main, name
        if where.kind == "other":
            stack = self._others.get(where.worktree)
            if stack is None:
                path = os.path.join(self.common_dir, "worktrees", where.worktree, "reftable")
                stack = self._others.setdefault(where.worktree, ReftableStack(path, self.format))
            return stack, where.bare
        return self.main, where.bare

    def read(self, name: str) -> Ref | None:
        if name in PSEUDO_REFS:
            try:
                return read_ref_file(os.path.join(self.git_dir, name), self.format, name, pseudo=True)
            except FileNotFoundError:
                return None
        stack, bare = self._stack_for(name)
        record = stack.read(os.fsencode(bare)) if bare else None
        return None if record is None else _ref_of(name, record)

    def raw_refs(self, prefix: str, *, root_refs: bool) -> Iterator[Ref | Broken]:
        # refs/iterator.c ref_iterator_select: a worktree's own refs shadow common ones of the
        # same name, and of the common stack only shared names are this worktree's.
        sources = [(self.main, False)] if self.worktree is None else [(self.worktree, False), (self.main, True)]
        seen = set()
        for stack, shared_only in sources:
            for record in stack.records():
                name = os.fsdecode(record.name)
                if name in seen or not name.startswith(prefix):
                    continue
                if not (name.startswith("refs/") or (root_refs and is_root_ref(name))):
                    continue
                if shared_only and parse_worktree_ref(name).kind != "shared":
                    continue  # the main worktree's own refs; this worktree has its own
                seen.add(name)
                if not check_refname(name):
                    yield Broken(f"{stack.dir}:{name}", "not a valid ref name")
                    continue
                yield _ref_of(name, record)


def _ref_of(name: str, record) -> Ref:
    if record.target is not None:
        return Ref(name, None, os.fsdecode(record.target))
    return Ref(name, record.oid, None, record.peeled)


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
