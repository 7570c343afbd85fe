"""The files backend: loose ref files, packed-refs, and the root refs beside them (files-backend.c)."""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator

from ..errors import CorruptObject
from ..mapped_file import open_regular
from ..oid import ObjectFormat
from .names import PER_WORKTREE_PREFIXES, PSEUDO_REFS, check_refname, is_root_ref, parse_worktree_ref
from .packed import PackedRefsFile
from .ref import Broken, Ref, _warn

# git reads a loose ref whole; a valid one is "ref: " and a name below the git dir, so it
# stays under PATH_MAX (4096). Bigger files are refused rather than read.
MAX_LOOSE_REF = 4096 + 64
SPACE = b" \t\n\r"  # git's isspace


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

