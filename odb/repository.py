"""Which git dir, objects directory and hash format a user's path means, found as git finds them.

discover(path, env) answers what `git -C path rev-parse --git-dir --git-common-dir
--show-object-format` answers, with `path` standing for git's working directory:

1. GIT_DIR, when set, names the git dir (relative to path) and nothing is searched (git's
   setup_explicit_git_dir). A path that is itself a `.git` file is read as one.
2. Otherwise path and then each parent is tried, as git's repo_discovery_find_dir does: first
   DIR/.git (a `gitdir:` file, or a git directory), then DIR itself as a bare repository. Before
   going up, path itself may also be a bare objects directory (something git has no word for):
   then there is no git dir. The search stops below a GIT_CEILING_DIRECTORIES entry, and at a
   filesystem boundary unless GIT_DISCOVERY_ACROSS_FILESYSTEM is true.
3. The common dir is GIT_COMMON_DIR if set, else what the git dir's `commondir` file names (a
   linked worktree), else the git dir. The config, the objects and the hash format are the
   common dir's.
4. The objects directory is GIT_OBJECT_DIRECTORY if set, else COMMON/objects.
   GIT_ALTERNATE_OBJECT_DIRECTORIES (':'-separated, entries may be C-quoted) come before the
   objects directory's own info/alternates, as in git.
   Relative environment paths are taken from the directory where the search ended (a work
   tree's top, a bare repository), or from path when GIT_DIR is set: git's working directory
   once its setup has run.

A directory counts as a git dir as in git's is_git_directory: a valid HEAD, and objects/ and
refs/ that can be searched. git's safe.directory ownership check is not made: this library
reads objects, it runs no hooks and no configured commands.

Every metadata file is opened non-blocking, regular files only, and read with a byte limit
(mapped_file.read_bounded); a path may hold any bytes (str with surrogateescape, or bytes).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field

from .errors import AccessDenied, FileTooLarge, NotARepository, display_path
from .mapped_file import open_regular, read_bounded
from .oid import FORMATS, SHA1, ObjectFormat
from .alternates_file import parse_alternates
from .refused_paths import resolve

# git refuses a .git file over 1 MiB (read_gitfile_gently's max_file_size); commondir holds
# one path just as a .git file does, and gets the same limit.
MAX_GITFILE = 1 << 20
MAX_COMMONDIR = 1 << 20
# git reads the config whole, with no limit below INT_MAX. Real configs are kilobytes (thousands
# of branches and remotes stay below 1 MiB); this limit leaves a wide margin and keeps a hostile
# file's cost bounded.
MAX_CONFIG = 16 << 20
HEAD_READ = 255  # validate_headref reads this much of HEAD
MAX_FORMAT_VALUE = 64

TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Repository:
    """Where one repository's objects are, as discovery found them."""

    objects_dir: str
    format: ObjectFormat
    git_dir: str | None = None  # None when the user named a bare objects directory
    common_dir: str | None = None
    alternates: list[str] = field(default_factory=list)  # from GIT_ALTERNATE_OBJECT_DIRECTORIES


def discover(path, env=None) -> Repository:
    """The repository that `path` means (see the module docstring); NotARepository or
    AccessDenied when there is none to read."""
    env = os.environ if env is None else env
    given = os.path.abspath(os.fsdecode(path))
    git_dir, base = _find_git_dir(given, env)
    if git_dir is None:
        return Repository(base, object_format(os.path.join(os.path.dirname(base), "config"), required=False))
    common = _common_dir(git_dir, env, base)
    objects = _env_path(env, "GIT_OBJECT_DIRECTORY", base) or os.path.join(common, "objects")
    alternates = parse_alternates(os.fsencode(env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "")), b":", base)
    return Repository(objects, object_format(os.path.join(common, "config")), git_dir, common, alternates)


# -- finding the git dir -------------------------------------------------------------


def _find_git_dir(given: str, env) -> tuple[str | None, str]:
    """(git dir, git's working directory after setup); (None, objects dir) for an objects dir."""
    explicit = env.get("GIT_DIR")
    try:
        st = os.stat(given)
    except FileNotFoundError:
        raise NotARepository(f"{display_path(given)}: no such file or directory") from None
    except PermissionError:
        raise AccessDenied(given) from None
    if explicit:
        if not stat.S_ISDIR(st.st_mode):
            raise NotARepository(f"{display_path(given)}: not a directory")
        git_dir = os.path.join(given, os.fsdecode(explicit))
        if _is_regular(git_dir):
            git_dir = _read_gitfile(git_dir, env)
        elif not _is_git_directory(git_dir, env, strict=True):
            raise NotARepository(f"not a git repository: '{display_path(git_dir)}'")
        return git_dir, given
    if stat.S_ISREG(st.st_mode):
        # The path of a .git file itself: what it points to (git never gets here, it cannot
        # chdir into a file). Any other file is not a repository, which is what to say, rather
        # than git's "invalid gitfile format" for a file nobody meant as one.
        if not _looks_like_gitfile(given):
            raise NotARepository(f"{display_path(given)}: not a git repository but a file (give a repository, "
                                 "its .git or objects directory, or a .git file)")
        return _read_gitfile(given, env), os.path.dirname(given)
    if not stat.S_ISDIR(st.st_mode):
        raise NotARepository(f"{display_path(given)}: not a directory")
    return _search(given, env)


def _search(given: str, env) -> tuple[str | None, str]:
    start = resolve(given)  # git searches from its physical working directory
    ceiling = _ceiling_length(start, env)
    one_filesystem = env.get("GIT_DISCOVERY_ACROSS_FILESYSTEM", "").strip().lower() not in TRUE_WORDS
    device = os.stat(start).st_dev
    here = start
    while True:
        first = here == start
        found = _git_dir_in(here, env, strict=first)
        if found is not None:
            return found, here
        if first and _is_objects_dir(here):
            return None, here
        parent = os.path.dirname(here)
        if parent == here or len(parent) <= ceiling:
            raise NotARepository(f"{display_path(given)}: not a git repository (or any of the parent directories)")
        if one_filesystem and _device(parent) != device:
            raise NotARepository(
                f"{display_path(given)}: not a git repository (or any parent up to mount point "
                f"{display_path(here)}); stopping at filesystem boundary (GIT_DISCOVERY_ACROSS_FILESYSTEM not set)")
        here = parent


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _ceiling_length(start: str, env) -> int:
    """How long a path the search may shorten `start` to: every directory it tries is longer.

    git's longest_ancestor_length: the longest GIT_CEILING_DIRECTORIES entry that is a proper
    ancestor of start; entries are absolute, made real unless an empty entry came before them.
    """
    longest = 0  # "/": the root itself is tried, as in git
    resolve_entries = True
    for entry in env.get("GIT_CEILING_DIRECTORIES", "").split(":"):
        if not entry:
            resolve_entries = False
            continue
        if not entry.startswith("/"):
            continue
        ceiling = os.path.normpath(resolve(entry) if resolve_entries else entry)
        if ceiling == "/":
            longest = max(longest, 1)
        elif start.startswith(ceiling + "/"):
            longest = max(longest, len(ceiling))
    return longest


def _git_dir_in(here: str, env, strict: bool) -> str | None:
    """The git dir found at one level of the search: HERE/.git, else HERE as a bare repository."""
    dotgit = os.path.join(here, ".git")
    try:
        st = os.stat(dotgit)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    except PermissionError:
        if strict:
            raise AccessDenied(dotgit) from None
        st = None
    if st is not None:
        if stat.S_ISREG(st.st_mode):
            return _read_gitfile(dotgit, env)
        if stat.S_ISDIR(st.st_mode):
            if _is_git_directory(dotgit, env, strict):
                return dotgit
        else:
            raise NotARepository(f"not a regular file: '{display_path(dotgit)}'")
    if _is_git_directory(here, env, strict):
        return here
    return None


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _looks_like_gitfile(path: str) -> bool:
    try:
        return read_bounded(path, MAX_GITFILE).startswith(b"gitdir: ")
    except FileTooLarge:
        return False  # a tarball, an image: anything but a .git file
    except OSError:
        return True  # _read_gitfile says why


def _read_gitfile(path: str, env) -> str:
    """The git dir a `gitdir: PATH` file names, as git's read_gitfile_gently reads it."""
    try:
        data = read_bounded(path, MAX_GITFILE)
    except FileTooLarge:
        raise NotARepository(f"too large to be a .git file: '{display_path(path)}'") from None
    except PermissionError:
        raise AccessDenied(path) from None
    except OSError as e:
        raise NotARepository(f"{display_path(path)}: {e.strerror}") from None
    if not data.startswith(b"gitdir: "):
        raise NotARepository(f"invalid gitfile format: {display_path(path)}")
    target = data[8:].rstrip(b"\r\n")
    if not target or b"\0" in target:
        raise NotARepository(f"no path in gitfile: {display_path(path)}")
    git_dir = os.path.join(os.path.dirname(path), os.fsdecode(target))
    if not _is_git_directory(git_dir, env, strict=True):
        raise NotARepository(f"gitfile does not point to a valid repository: {display_path(path)}")
    return resolve(git_dir)


def _is_git_directory(path: str, env, strict: bool) -> bool:
    """git's is_git_directory: a valid HEAD, and searchable objects/ and refs/ in the common dir.
    With strict, a part this process may not read is AccessDenied rather than "not one"."""
    try:
        if not _valid_head(os.path.join(path, "HEAD")):
            return False
        common = _common_dir(path, env, path)
        objects = _env_path(env, "GIT_OBJECT_DIRECTORY", path) or os.path.join(common, "objects")
        for needed in (objects, os.path.join(common, "refs")):
            if not stat.S_ISDIR(os.stat(needed).st_mode):
                return False
            if not os.access(needed, os.X_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), needed)
        return True
    except PermissionError as e:
        if strict:
            raise AccessDenied(e.filename or path) from None
        return False
    except (OSError, NotARepository):
        if strict:
            raise
        return False


def _valid_head(head: str) -> bool:
    """git's validate_headref: a symlink into refs/, "ref: refs/...", or an object id."""
    try:
        st = os.lstat(head)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(head).startswith("refs/")
    try:
        fd = open_regular(head)
    except PermissionError:
        raise
    except OSError:  # a FIFO for HEAD hangs git; here it is simply no HEAD
        return False
    try:
        data = os.read(fd, HEAD_READ)
    finally:
        os.close(fd)
    if data.startswith(b"ref:") and data[4:].lstrip(b" \t\n\v\f\r").startswith(b"refs/"):
        return True
    return any(re.match(rb"[0-9a-fA-F]{%d}" % f.hex_len, data) for f in FORMATS.values())


def _common_dir(git_dir: str, env, base: str) -> str:
    """GIT_COMMON_DIR, else the directory the git dir's commondir file names, else git_dir."""
    named = _env_path(env, "GIT_COMMON_DIR", base)
    if named:
        return named
    path = os.path.join(git_dir, "commondir")
    if not os.path.lexists(path):
        return git_dir
    try:
        data = read_bounded(path, MAX_COMMONDIR).rstrip(b"\r\n")
    except PermissionError:
        raise AccessDenied(path) from None
    except OSError as e:
        raise NotARepository(f"failed to read {display_path(path)}: {e.strerror}") from None
    if not data or b"\0" in data:
        raise NotARepository(f"failed to read {display_path(path)}: no path in it")
    return resolve(os.path.join(git_dir, os.fsdecode(data)))


def _env_path(env, name: str, base: str) -> str | None:
    value = env.get(name)
    if not value:
        return None
    return os.path.join(base, os.fsdecode(value))


def _is_objects_dir(path: str) -> bool:
    # pack/ alone would also match a work tree's subdirectory; git makes info/ beside it.
    return os.path.isdir(os.path.join(path, "pack")) and (
        os.path.isdir(os.path.join(path, "info")) or os.path.basename(path) == "objects")


# -- the config: the hash format ----------------------------------------------------

_SECTION = re.compile(rb"^[ \t]*\[", re.MULTILINE)
_EXTENSIONS = re.compile(rb"^[ \t]*\[extensions\]", re.MULTILINE | re.IGNORECASE)
# A key line, or (matched right after a header) the rest of the header's own line.
_OBJECT_FORMAT = re.compile(rb"^[ \t]*objectformat[ \t]*(=|$|[;#])", re.MULTILINE | re.IGNORECASE)
_OBJECT_FORMAT_AFTER_HEADER = re.compile(rb"[ \t]*objectformat[ \t]*(=|$|[;#])", re.MULTILINE | re.IGNORECASE)


def object_format(config: str, required: bool = True) -> ObjectFormat:
    """extensions.objectFormat of a config file; SHA-1 when unset or when there is no file."""
    try:
        data = read_bounded(config, MAX_CONFIG)
    except FileNotFoundError:
        return SHA1
    except FileTooLarge as e:
        raise NotARepository(f"{e}: refusing to read a config that large") from None
    except PermissionError:
        raise AccessDenied(config) from None
    except OSError as e:
        if not required:  # beside a bare objects directory, anything may be called config
            return SHA1
        raise NotARepository(f"{display_path(config)}: {e.strerror}") from None
    name = _object_format_name(data).decode("utf-8", "backslashreplace")
    fmt = FORMATS.get(name)
    if fmt is None:
        raise NotARepository(f"{display_path(config)}: unknown object format {name!r}")
    return fmt


def _object_format_name(data: bytes) -> bytes:
    """The last extensions.objectFormat value in git config text (the last one wins, as in
    git). Found with regular expressions over the whole text, so that a config of millions of
    lines costs a scan, not a Python loop per line."""
    value = b"sha1"
    for header in _EXTENSIONS.finditer(data):
        following = _SECTION.search(data, header.end())
        stop = following.start() if following else len(data)
        same_line = _OBJECT_FORMAT_AFTER_HEADER.match(data, header.end(), stop)
        keys = ([same_line] if same_line else []) + list(_OBJECT_FORMAT.finditer(data, header.end(), stop))
        for key in keys:
            line_end = data.find(b"\n", key.end(), stop)
            line_end = stop if line_end < 0 else line_end
            value = b"true" if key.group(1) != b"=" else _config_value(data[key.end() : line_end])
    return value.strip().lower()


def _config_value(text: bytes) -> bytes:
    """A config value: quotes removed, escapes applied, a comment or trailing blanks dropped."""
    text = text[:MAX_FORMAT_VALUE * 4]
    out = bytearray()
    quoted = False
    pending_space = b""
    i = 0
    while i < len(text):
        c = text[i : i + 1]
        i += 1
        if c == b'"':
            quoted = not quoted
            continue
        if not quoted and c in b";#":
            break
        if c == b"\\" and i < len(text):
            out += pending_space + {b"n": b"\n", b"t": b"\t", b"b": b"\b"}.get(text[i : i + 1], text[i : i + 1])
            pending_space = b""
            i += 1
            continue
        if not quoted and c in b" \t\r":
            if out:
                pending_space += c
            continue
        out += pending_space + c
        pending_space = b""
    return bytes(out)
