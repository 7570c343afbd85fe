"""Finding a repository as git finds it: every path form, the environment, ceilings and filesystem
boundaries, linked worktrees, C-quoted alternates; metadata read with a byte limit, never blocking;
paths in any encoding. git (`rev-parse --git-dir --git-common-dir --show-object-format`) is the
oracle."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import odb
from limits import memory_limit, time_limit
from odb.alternates_file import MAX_ALTERNATES, unquote_c_style
from odb.repository import MAX_COMMONDIR, MAX_CONFIG, MAX_GITFILE
from oracle import git_env

HUGE = 512 << 20


def git_says(path, env: dict | None = None) -> tuple[str, str, str] | None:
    """What `git -C path rev-parse` finds: (real git dir, real common dir, object format), or
    None if git finds no repository."""
    answers = []
    for option in ("--git-dir", "--git-common-dir", "--show-object-format"):  # one each: paths may hold "\n"
        proc = subprocess.run(["git", "-C", os.fsencode(path), "rev-parse", "--path-format=absolute", option],
                              env={**git_env(), **(env or {})}, capture_output=True)
        if proc.returncode != 0:
            return None
        answers.append(os.fsdecode(proc.stdout[:-1]))
    git_dir, common, fmt = answers
    return os.path.realpath(git_dir), os.path.realpath(common), fmt


def odb_says(path, env: dict | None = None) -> tuple[str, str, str] | None:
    try:
        store = odb.open(path, env={**git_env(), **(env or {})})
    except odb.NotARepository:
        return None
    with store:
        return os.path.realpath(store.git_dir), os.path.realpath(store.common_dir), store.format.name


def assert_same_as_git(path, env: dict | None = None) -> tuple[str, str, str] | None:
    want = git_says(path, env)
    assert odb_says(path, env) == want, path
    return want


def run_git(cwd: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], env={**git_env(), **(env or {})}, check=True,
                          capture_output=True, text=True).stdout


# ---- where the search starts ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["loose", "bare", "sha256"])
def test_every_starting_point_git_accepts(fixture_repo, name):
    repo = fixture_repo(name)
    starts = [repo.path, repo.git_dir, repo.git_dir / "refs", repo.objects_dir / "pack"]
    if not repo.bare:
        starts += [p for p in repo.path.rglob("*") if p.is_dir() and ".git" not in p.parts][:3]
    for start in starts:
        found = assert_same_as_git(start)
        assert found is not None, start


def test_a_subdirectory_of_a_work_tree(repo_copy):
    repo = repo_copy("loose")
    deep = repo.path / "new" / "deeper" / "still"
    deep.mkdir(parents=True)
    assert assert_same_as_git(deep)[0] == str(repo.git_dir)
    with odb.open(deep) as store:
        assert list(store) == repo.git.ids()


def test_the_path_of_a_gitdir_file_itself(repo_copy, tmp_path):
    """A work tree whose .git is a `gitdir:` file (a submodule's, a worktree's): both the work
    tree and the file itself open the repository the file names."""
    repo = repo_copy("loose")
    elsewhere = tmp_path / "moved.git"
    repo.git_dir.rename(elsewhere)
    (repo.path / ".git").write_text(f"gitdir: {elsewhere}\n")
    assert assert_same_as_git(repo.path)[0] == str(elsewhere)
    with odb.open(repo.path / ".git") as store:
        assert store.git_dir == str(elsewhere)
        assert sorted(store) == sorted(
            run_git(repo.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())


def test_a_relative_gitdir_file(repo_copy):
    repo = repo_copy("loose")
    repo.git_dir.rename(repo.path / "real.git")
    (repo.path / ".git").write_text("gitdir: real.git\n")
    assert_same_as_git(repo.path)
    assert odb_says(repo.path / ".git") == git_says(repo.path)


def test_an_objects_directory_has_no_git_dir(fixture_repo, tmp_path):
    """Not git's: an objects directory on its own (an alternate's, say) opens with no git dir."""
    repo = fixture_repo("midx")
    with odb.open(repo.objects_dir) as store:
        assert store.git_dir is None and store.common_dir is None
        assert list(store) == repo.git.ids()


@pytest.mark.parametrize("what", ["nothing", "empty .git", "a file"])
def test_not_a_repository_as_git_says(tmp_path, what):
    start = tmp_path / "start"
    start.mkdir()
    if what == "empty .git":
        (start / ".git").mkdir()
    elif what == "a file":
        (start / ".git").write_text("not a gitdir line\n")
    assert git_says(start) is None
    with pytest.raises(odb.NotARepository) as e:
        odb.open(start, env=git_env())
    assert "\n" not in str(e.value)


# ---- linked worktrees -----------------------------------------------------------------------------


def test_linked_worktree_of_a_sha256_repository(repo_copy, tmp_path):
    """Its own git dir is .git/worktrees/W; the config (and so the hash format) and the objects
    are the main repository's."""
    repo = repo_copy("sha256")
    worktree = tmp_path / "linked"
    run_git(repo.path, "worktree", "add", "-q", str(worktree))
    want = assert_same_as_git(worktree)
    assert want[2] == "sha256" and want[1] == str(repo.git_dir)
    assert want[0] == str(repo.git_dir / "worktrees" / "linked")
    with odb.open(worktree) as store:
        assert store.format is odb.SHA256
        assert list(store) == repo.git.ids()
    (worktree / "sub").mkdir()
    assert_same_as_git(worktree / "sub")
    assert_same_as_git(repo.git_dir / "worktrees" / "linked")


# ---- the environment ------------------------------------------------------------------------------


def test_git_dir_from_the_environment(fixture_repo, repo_copy, tmp_path):
    """GIT_DIR names the repository whatever the path: absolute, or relative to the path."""
    other = fixture_repo("midx")
    start = repo_copy("loose").path
    for value in (str(other.git_dir), os.path.relpath(other.git_dir, start)):
        env = {"GIT_DIR": value}
        assert assert_same_as_git(start, env)[0] == str(other.git_dir)
        with odb.open(start, env={**git_env(), **env}) as store:
            assert list(store) == other.git.ids()
    assert git_says(start, {"GIT_DIR": str(tmp_path)}) is None
    with pytest.raises(odb.NotARepository):
        odb.open(start, env={"GIT_DIR": str(tmp_path)})


def test_object_directory_and_alternates_from_the_environment(fixture_repo, repo_copy):
    loose, midx, base = repo_copy("loose"), fixture_repo("midx"), fixture_repo("alt-base")
    env = {"GIT_OBJECT_DIRECTORY": str(midx.objects_dir)}
    with odb.open(loose.path, env={**git_env(), **env}) as store:
        assert store.objects_dir == str(midx.objects_dir)
        assert list(store) == sorted(run_git(loose.path, "cat-file", "--batch-all-objects",
                                             "--batch-check=%(objectname)", env=env).split())
    # ':'-separated, relative entries from the work tree's top, a C-quoted one.
    rel = os.path.relpath(midx.objects_dir, loose.path)
    env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": f"{rel}:\"{base.objects_dir}\""}
    (loose.path / "sub").mkdir()
    want = sorted(run_git(loose.path / "sub", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)",
                          env=env).split())
    assert set(midx.git.ids()) < set(want) and set(base.git.ids()) < set(want)
    with odb.open(loose.path / "sub", env={**git_env(), **env}) as store:
        assert list(store) == want
        oid = midx.git.ids()[0]
        assert store.read(oid) == midx.git.read(oid)


def test_ceiling_directories(repo_copy):
    repo = repo_copy("loose")
    deep = repo.path / "new" / "deeper"
    deep.mkdir(parents=True)
    # A ceiling is never itself searched, unless the search starts there.
    for ceiling, found in ((repo.path / "new", False), (repo.path, False), (deep, True), (repo.path.parent, True)):
        env = {"GIT_CEILING_DIRECTORIES": f"/nonexistent:{ceiling}"}
        assert (assert_same_as_git(deep, env) is not None) is found, ceiling


@pytest.fixture
def tmpfs_inside(repo_copy):
    """A work tree with a tmpfs mounted on its subdirectory `mnt` (a filesystem boundary)."""
    repo = repo_copy("loose")
    mnt = repo.path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "gitfs-test", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    (mnt / "sub").mkdir()
    yield repo, mnt / "sub"
    subprocess.run(["umount", str(mnt)], check=True)


def test_search_stops_at_a_filesystem_boundary(tmpfs_inside):
    repo, start = tmpfs_inside
    assert git_says(start) is None
    with pytest.raises(odb.NotARepository, match="filesystem boundary"):
        odb.open(start, env=git_env())
    env = {"GIT_DISCOVERY_ACROSS_FILESYSTEM": "true"}
    assert assert_same_as_git(start, env)[0] == str(repo.git_dir)


# ---- C-quoted alternates ------------------------------------------------------------------------------


@pytest.mark.parametrize(("quoted", "raw"), [
    (rb'"plain"', b"plain"),
    (rb'"b\303\251"', "bé".encode()),
    (rb'"\a\b\t\n\v\f\r\"\\"', b'\a\b\t\n\v\f\r"\\'),
    (rb'"\101\0601"', b"A01"),
    (rb'"x"rest', b"x"),
])
def test_unquote_c_style_as_git(quoted, raw):
    out, end = unquote_c_style(quoted, 0)
    assert out == raw and quoted[end - 1 : end] == b'"'


@pytest.mark.parametrize("broken", [rb'"no end', rb'"bad \q escape"', rb'"octal \400"', rb'"short \12"', b'"\\'])
def test_unquote_c_style_refuses_what_git_refuses(broken):
    assert unquote_c_style(broken, 0) is None


def c_quote(path: bytes) -> bytes:
    """git's quote_c_style for a path: what `git` writes in an alternates file."""
    out = bytearray(b'"')
    for c in path:
        if c in b'"\\':
            out += b"\\" + bytes([c])
        elif c == 0x09:
            out += b"\\t"
        elif c < 0x20 or c >= 0x7F:
            out += b"\\%03o" % c
        else:
            out.append(c)
    return bytes(out + b'"')


@pytest.mark.parametrize("name", ["bé", "tab\there", 'quote"back\\slash', b"latin\xe9"])
def test_c_quoted_alternates_line(repo_copy, tmp_path, name):
    """The alternate lives in a directory whose name git quotes; its objects are served."""
    base_copy = repo_copy("alt-base")
    parent = tmp_path / os.fsdecode(name if isinstance(name, bytes) else name.encode())
    os.rename(base_copy.path, parent)
    alt_objects = parent / ".git" / "objects"
    repo = repo_copy("loose")
    own = set(repo.git.ids())
    info = repo.objects_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "alternates").write_bytes(c_quote(os.fsencode(alt_objects)) + b"\n")
    want = sorted(run_git(repo.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    borrowed = sorted(set(want) - own)
    assert borrowed, "git did not read the quoted alternate"
    with odb.open(repo.path) as store:
        assert list(store) == want
        assert store.read(borrowed[0]) == repo.git.read(borrowed[0])
        assert [d.path for d in store._dirs[1:]] == [str(alt_objects)]


# ---- metadata: bounded, never blocking --------------------------------------------------------------


def _sparse(path: Path, size: int = HUGE) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    with open(path, "wb") as f:
        f.truncate(size)


def _metadata_case(repo_copy, tmp_path, what: str) -> tuple[Path, Path]:
    """(the file to damage, the path to open) for each metadata file odb reads."""
    repo = repo_copy("loose")
    if what == "config":
        return repo.git_dir / "config", repo.path
    if what == "HEAD":
        return repo.git_dir / "HEAD", repo.path
    if what == "alternates":
        (repo.objects_dir / "info").mkdir(exist_ok=True)
        return repo.objects_dir / "info" / "alternates", repo.path
    if what == "gitdir file":
        real = tmp_path / "real.git"
        repo.git_dir.rename(real)
        (repo.path / ".git").write_text(f"gitdir: {real}\n")
        return repo.path / ".git", repo.path
    if what == "commondir":
        worktree = tmp_path / "linked"
        run_git(repo.path, "worktree", "add", "-q", str(worktree))
        return repo.git_dir / "worktrees" / "linked" / "commondir", worktree
    raise AssertionError(what)


METADATA = ["config", "HEAD", "alternates", "gitdir file", "commondir"]


@pytest.mark.parametrize("what", METADATA)
def test_huge_sparse_metadata_file_is_refused_at_once(repo_copy, tmp_path, what):
    """512 MB (sparse: free to make) in place of a metadata file: one clear error, or that source
    ignored, in well under a second and without reading it (git refuses each of these too)."""
    victim, start = _metadata_case(repo_copy, tmp_path, what)
    _sparse(victim)
    began = time.monotonic()
    with time_limit(5), memory_limit(4 << 20):
        if what == "alternates":
            with odb.open(start, env=git_env()) as store:
                assert len(store._dirs) == 1  # the alternates are ignored, the repository served
        else:
            with pytest.raises(odb.NotARepository) as e:
                odb.open(start, env=git_env())
            assert len(str(e.value)) < 500 and "\n" not in str(e.value)
    assert time.monotonic() - began < 1.0
    if what != "alternates":
        assert git_says(start) is None


@pytest.mark.parametrize(("what", "limit"), [("config", MAX_CONFIG), ("gitdir file", MAX_GITFILE),
                                             ("commondir", MAX_COMMONDIR)])
def test_metadata_just_over_its_limit(repo_copy, tmp_path, what, limit):
    victim, start = _metadata_case(repo_copy, tmp_path, what)
    data = victim.read_bytes()
    with open(victim, "ab") as f:
        f.write(b"\n" * (limit + 1 - len(data)))
    with time_limit(5), pytest.raises(odb.NotARepository, match=f"larger than {limit} bytes|too large"):
        odb.open(start, env=git_env())


def test_alternates_over_the_limit_are_ignored_with_a_warning(repo_copy, caplog):
    repo = repo_copy("alt-relative")
    alternates = repo.objects_dir / "info" / "alternates"
    line = alternates.read_bytes()
    alternates.write_bytes(line + b"#" * (MAX_ALTERNATES + 1 - len(line)))
    with odb.open(repo.path) as store:
        assert len(store._dirs) == 1
    assert any("larger than" in r.getMessage() for r in caplog.records)


def test_config_of_many_small_lines_is_read_quickly(repo_copy):
    """Up to its limit, a config is scanned, not looped over line by line."""
    repo = repo_copy("sha256")
    config = repo.git_dir / "config"
    text = config.read_bytes()
    with open(config, "ab") as f:
        f.write(b"[x]\n" * ((MAX_CONFIG - len(text)) // 4 - 10))
        f.write(b"[extensions]\n\tobjectformat = sha256\n")
    with time_limit(10):
        began = time.monotonic()
        with odb.open(repo.path) as store:
            assert store.format is odb.SHA256
        assert time.monotonic() - began < 3


@pytest.mark.parametrize(("text", "fmt"), [
    (b"[extensions]\n\tobjectFormat = sha256\n", "sha256"),
    (b"[Extensions]\nobjectformat=\"sha256\" # the hash\n", "sha256"),
    (b"[extensions] objectformat = sha256\n", "sha256"),
    (b"[extensions]\nobjectformat = sha256\n[extensions]\nobjectformat = sha1\n", "sha1"),
    (b"[extensions]\n  objectformat = sha256   \n", "sha256"),
    (b"[other]\nobjectformat = sha256\n", "sha1"),
    (b"; [extensions]\n# objectformat = sha256\n", "sha1"),
])
def test_object_format_read_as_git_reads_it(repo_copy, text, fmt):
    repo = repo_copy("empty")
    config = repo.git_dir / "config"
    config.write_bytes(config.read_bytes().replace(b"repositoryformatversion = 0", b"repositoryformatversion = 1")
                       + text)
    assert git_says(repo.path)[2] == fmt
    assert odb_says(repo.path)[2] == fmt


@pytest.mark.parametrize("what", METADATA)
def test_fifo_for_a_metadata_file_does_not_hang(repo_copy, tmp_path, what):
    """git itself blocks on some of these; odb refuses the file (or ignores the alternates)."""
    victim, start = _metadata_case(repo_copy, tmp_path, what)
    if victim.exists():
        victim.unlink()
    os.mkfifo(victim)
    with time_limit(5):
        try:
            odb.open(start, env=git_env()).close()
            assert what == "alternates", f"{what}: a FIFO was taken for a file"
        except odb.NotARepository as e:
            assert "\n" not in str(e)


# ---- paths in any encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["répo", b"r\xe9po-latin1", b"\xff\xfe", "tab\there and space", "new\nline"])
def test_repository_path_in_any_encoding(repo_copy, tmp_path, name):
    repo = repo_copy("midx")
    ids = repo.git.ids()
    raw = os.fsencode(tmp_path) + b"/" + (name if isinstance(name, bytes) else name.encode())
    os.rename(repo.path, raw)
    want = git_says(raw)
    assert want is not None
    for path in (raw, os.fsdecode(raw), Path(os.fsdecode(raw))):
        assert odb_says(path) == want
        with odb.open(path) as store:
            assert list(store) == ids
            assert store.read(ids[0])


@pytest.mark.parametrize("name", [b"missing-\xe9", b"\xff"])
def test_errors_about_undecodable_paths_can_be_printed(tmp_path, name):
    raw = os.fsencode(tmp_path) + b"/" + name
    for path in (raw, os.fsdecode(raw)):
        with pytest.raises(odb.NotARepository) as e:
            odb.open(path)
        str(e.value).encode("utf-8")  # no surrogates: printable on any UTF-8 stream
        assert "\\x" in str(e.value)
    os.mkdir(raw)
    with pytest.raises(odb.NotARepository) as e:
        odb.open(raw, env=git_env())
    str(e.value).encode("utf-8")
