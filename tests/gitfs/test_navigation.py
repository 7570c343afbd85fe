"""MNT/.refs and MNT/.tree/<rev> through a real mount, compared with git."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

import odb
from mounting import git_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def refs_repo(fixtures_root):
    return fixtures_root / "refs"


def refs_git(repo):
    return git_for(repo)


def git_lines(repo: Path, *args: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").splitlines()


def git_bytes(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def shown(refname: str) -> str:
    return refname.removeprefix("refs/")


def test_refs_are_symlinks_to_their_objects(refs_repo, mount):
    m = mount(refs_repo)
    refs = m.path / ".refs"
    listed = {}
    for line in git_lines(refs_repo, "for-each-ref", "--format=%(refname) %(objectname) %(symref)"):
        name, oid, *symref = line.split(" ")
        listed[shown(name)] = (oid, symref[0] if symref and symref[0] else None)
    seen = set()
    for dirpath, dirnames, filenames in os.walk(refs):
        for name in filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(refs))
            assert path.is_symlink(), rel
            seen.add(rel)
    assert "HEAD" in seen
    seen.discard("HEAD")
    assert seen == set(listed)
    for name, (oid, symref) in listed.items():
        link = refs / name
        target = os.readlink(link)
        assert not target.startswith("/"), (name, target)  # relative, so the mount can move
        if symref is None:
            assert target.endswith(f"{oid[:2]}/{oid[2:]}"), (name, target)
        else:  # a symbolic ref links to the ref it names
            assert os.path.normpath(os.path.join(os.path.dirname(name), target)) == shown(symref)
        assert link.read_bytes() == git_bytes(refs_repo, "cat-file", git_lines(refs_repo, "cat-file", "-t", oid)[0], oid)
    head = git_lines(refs_repo, "symbolic-ref", "HEAD")[0]
    assert os.readlink(refs / "HEAD") == shown(head)
    assert (refs / "HEAD").read_bytes() == (refs / shown(head)).read_bytes()


def test_neither_namespace_is_listed_in_the_root(refs_repo, mount):
    m = mount(refs_repo)
    names = os.listdir(m.path)
    assert ".refs" not in names and ".tree" not in names
    assert os.listdir(m.path / ".tree") == []
    files = subprocess.run(["find", str(m.path), "-type", "f"], capture_output=True, text=True, check=True)
    assert len(files.stdout.split()) == len(git_for(refs_repo).objects())


def walk(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode bits, size, target or None), as the mount shows them."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0o777, st.st_size, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None, None)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, None)
        dirnames[:] = [d for d in dirnames if not os.path.islink(Path(dirpath) / d)]
    return out


def git_tree(repo: Path, rev: str) -> dict[str, tuple]:
    """What the mount should show of rev's tree. Modes: what the repository lets through (the
    fixtures live in a 0700 directory), read bits for files, x with them for executables and
    directories."""
    shown = odb.open(repo).root_access().mode
    readable = shown & 0o444
    out = {}
    for line in git_bytes(repo, "ls-tree", "-r", "-t", "-l", "-z", rev).split(b"\0"):
        if not line:
            continue
        meta, path = line.split(b"\t", 1)
        mode, kind, oid, size = meta.decode().split()
        path = path.decode("utf-8", "surrogateescape")
        if mode in ("040000", "160000"):
            out[path] = ("dir", shown, None, None)
        elif mode == "120000":
            out[path] = ("link", 0o777, int(size), git_bytes(repo, "cat-file", "blob", oid).decode("utf-8", "surrogateescape"))
        else:
            out[path] = ("file", readable | (readable >> 2 if mode == "100755" else 0), int(size), None)
    return out


@pytest.mark.parametrize("rev", ["HEAD", "main", "v1.0", "heads:feature:x", "light-tree", "names"])
def test_a_revision_s_tree_is_git_s_tree(refs_repo, mount, rev):
    m = mount(refs_repo)
    git_rev = rev.replace(":", "/")
    assert walk(m.path / ".tree" / rev) == git_tree(refs_repo, git_rev)
    for line in git_bytes(refs_repo, "ls-tree", "-r", "-z", git_rev).split(b"\0"):
        if not line or not line.startswith((b"100644", b"100755")):
            continue
        meta, path = line.split(b"\t", 1)
        oid = meta.split()[2].decode()
        assert (m.path / ".tree" / rev / os.fsdecode(path)).read_bytes() == git_bytes(refs_repo, "cat-file", "blob", oid)


def test_entries_carry_the_committer_date(refs_repo, mount):
    m = mount(refs_repo)
    date = int(git_lines(refs_repo, "log", "-1", "--format=%ct", "HEAD")[0])
    for path in (m.path / ".tree" / "HEAD", m.path / ".tree" / "HEAD" / "README"):
        assert int(os.stat(path).st_mtime) == date


def test_grep_of_a_snapshot_finds_what_git_grep_finds(refs_repo, mount):
    m = mount(refs_repo)
    for pattern in ("a", "navigate", "notes"):
        done = subprocess.run(["grep", "-rl", pattern, "."], cwd=m.path / ".tree" / "main",
                              capture_output=True, text=True)
        found = sorted(p.removeprefix("./") for p in done.stdout.split())
        wanted = sorted(p.split(":", 1)[1] for p in git_lines(refs_repo, "grep", "-l", pattern, "main"))
        assert found == wanted, pattern


def test_submodules_are_empty_directories_naming_their_commit(refs_repo, mount):
    m = mount(refs_repo)
    for line in git_bytes(refs_repo, "ls-tree", "-r", "-z", "HEAD").split(b"\0"):
        if line.startswith(b"160000"):
            meta, path = line.split(b"\t", 1)
            sub = m.path / ".tree" / "HEAD" / os.fsdecode(path)
            assert sub.is_dir() and os.listdir(sub) == []
            assert os.getxattr(sub, "user.git.commit").decode() == meta.split()[2].decode()
            break
    else:
        pytest.fail("the refs fixture has no submodule")


def test_objects_xattrs_apply_under_tree(refs_repo, mount):
    m = mount(refs_repo)
    readme = m.path / ".tree" / "HEAD" / "README"
    oid = git_lines(refs_repo, "rev-parse", "HEAD:README")[0]
    assert os.getxattr(readme, "user.git.type") == b"blob"
    plain = m.path / oid[:2] / oid[2:]
    assert os.getxattr(readme, "user.git.source") == os.getxattr(plain, "user.git.source")


def test_tree_entries_carry_their_id_and_mode_as_git_ls_tree_prints_them(refs_repo, mount):
    m = mount(refs_repo)
    modes = set()
    for line in git_bytes(refs_repo, "ls-tree", "-r", "-t", "-z", "main").split(b"\0"):
        if not line:
            continue
        meta, path = line.split(b"\t", 1)
        mode, kind, oid = meta.decode().split()
        if mode == "120000":
            continue  # the kernel answers user.* of a symlink itself (ENODATA): only files and directories have them
        entry = m.path / ".tree" / "main" / os.fsdecode(path)
        assert os.getxattr(entry, "user.git.id", follow_symlinks=False).decode() == oid, path
        assert os.getxattr(entry, "user.git.mode", follow_symlinks=False).decode() == mode, path
        assert {"user.git.id", "user.git.mode"} <= set(os.listxattr(entry, follow_symlinks=False))
        modes.add(mode)
    assert modes == {"100644", "100755", "040000", "160000"}


def test_every_directory_lists_dot_and_dot_dot(refs_repo, mount):
    """`ls -a` of the root, a bucket and the namespaces, as of any directory."""
    m = mount(refs_repo)
    oid = git_lines(refs_repo, "rev-parse", "HEAD")[0]
    for directory in (m.path, m.path / oid[:2], m.path / ".refs", m.path / ".refs" / "heads", m.path / ".tree",
                      m.path / ".tree" / "HEAD", m.path / ".tree" / "HEAD" / "src"):
        names = subprocess.run(["ls", "-a1", "-f", str(directory)], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        assert names[:2] == [".", ".."], directory
        assert sorted(names[2:]) == sorted(os.listdir(directory)), directory
    listed = subprocess.run(["ls", "-la", str(m.path)], capture_output=True, text=True, check=True).stdout
    assert [line.split()[-1] for line in listed.splitlines()[1:3]] == [".", ".."]


def test_bad_revisions(refs_repo, mount, fixtures_root):
    m = mount(refs_repo)
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / ".tree" / "no-such-branch")
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / ".tree" / "blob-tag")  # a tag of a blob has no tree
    ids = sorted(git_for(refs_repo).objects())
    prefix = next(a[:4] for a, b in zip(ids, ids[1:]) if a[:4] == b[:4])
    try:
        git_lines(refs_repo, "rev-parse", "--verify", "-q", f"{prefix}^{{tree}}")
        pytest.skip("git settles this prefix by type")
    except subprocess.CalledProcessError:
        pass
    with pytest.raises(OSError) as e:
        os.stat(m.path / ".tree" / prefix)
    assert e.value.errno == errno.ENOTUNIQ
    assert prefix in m.log()


def test_deep_and_wide_trees(refs_repo, mount):
    m = mount(refs_repo)
    top = m.path / ".tree" / "huge"
    deep = top / "deep" / "/".join(["d"] * 100)
    assert (deep / "d").is_dir()
    wide = os.listdir(top / "wide")
    assert len(wide) == 100_000 and wide[0] == "f000000" and wide[-1] == "f099999"
    assert (top / "wide" / "f054321").read_bytes() == b"shared by every wide entry\n"
    path = top / "deep"
    for _ in range(999):
        path = path / "d"
    assert (path / "leaf.txt").read_bytes() == b"shared by every wide entry\n"


def test_refs_follow_the_repository(repo_copy, mount):
    repo = repo_copy("refs")
    m = mount(repo.path)
    head = git_lines(repo.path, "rev-parse", "HEAD")[0]
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "refs/heads/brand-new", head], check=True)
    assert "brand-new" in os.listdir(m.path / ".refs" / "heads")
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "-d", "refs/heads/brand-new"], check=True)
    time.sleep(1.2)  # the kernel keeps a ref's entry for a second
    assert "brand-new" not in os.listdir(m.path / ".refs" / "heads")
    with pytest.raises(FileNotFoundError):
        os.readlink(m.path / ".refs" / "heads" / "brand-new")


def test_reftable_refs_are_the_newest_git_s(mount):
    repo = ROOT / "fixtures" / "refs" / "reftable"
    answers = json.loads((ROOT / "fixtures" / "refs" / "reftable.json").read_text())
    m = mount(repo)
    refs = m.path / ".refs"
    names = {str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_symlink()}
    wanted = {shown(line.split(" ")[2]) for line in answers["for_each_ref"]} | {"HEAD"}
    assert wanted <= names
    for line in answers["for_each_ref"]:
        oid, kind, name, *symref = line.split(" ")
        assert (refs / shown(name)).read_bytes() == (m.path / oid[:2] / oid[2:]).read_bytes()


def requests(mountpoint: Path) -> dict[str, int]:
    return json.loads(os.getxattr(mountpoint, "user.gitfs.status"))["requests"]


def test_a_walk_in_path_order_is_read_ahead(refs_repo, mount):
    """cat of a tree's files in path order, each looked up just before it is read (no readdir):
    the first lookup starts read-ahead, so that hardly any READ waits for an object to load."""
    m = mount(refs_repo)
    top = m.path / ".tree" / "names" / "many"
    paths = []
    for line in git_bytes(refs_repo, "ls-tree", "-z", "names:many").split(b"\0"):
        if line.startswith(b"100644"):
            paths.append(os.fsdecode(line.split(b"\t", 1)[1]))
    before = requests(m.path)
    subprocess.run(["xargs", "-0", "cat", "--"], input="\0".join(paths).encode(), cwd=top,
                   stdout=subprocess.DEVNULL, check=True)
    after = requests(m.path)
    waited = after.get("loads_waited", 0) - before.get("loads_waited", 0)
    reads = after.get("read", 0) - before.get("read", 0)
    assert len(paths) == 1500 and reads > 1000
    assert waited <= len(paths) // 20, (waited, reads)


def status_of(mountpoint: Path) -> dict:
    return json.loads(os.getxattr(mountpoint, "user.gitfs.status"))


def test_thousands_of_packed_refs_are_read_once_per_refresh(repo_copy, mount):
    """`ls -l` of 4,000 packed tags reads the refs once (opendir), not once per entry: lookups,
    stats and link targets are answered from that read. A re-read shows new and deleted refs."""
    repo = repo_copy("refs")
    head = git_lines(repo.path, "rev-parse", "HEAD")[0]
    script = "".join(f"create refs/tags/many/t{i:04d} {head}\n" for i in range(4000))
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "--stdin"], input=script.encode(), check=True)
    subprocess.run(["git", "-C", str(repo.path), "pack-refs", "--all"], check=True)
    m = mount(repo.path)
    many = m.path / ".refs" / "tags" / "many"
    before = status_of(m.path)["refs"]["reads"]
    targets = {}
    for entry in os.scandir(many):  # what ls -l does: a listing, then lstat and readlink of each
        assert stat.S_ISLNK(entry.stat(follow_symlinks=False).st_mode)
        targets[entry.name] = os.readlink(entry.path)
    reads = status_of(m.path)["refs"]["reads"] - before
    assert 1 <= reads <= 2, f"{reads} reads of every ref for one listing of 4000 tags"  # lookup, opendir
    assert sorted(targets) == [f"t{i:04d}" for i in range(4000)]
    assert set(targets.values()) == {f"../../../{head[:2]}/{head[2:]}"}
    facts = status_of(m.path)
    assert facts["refs"]["refs"] > 4000 and facts["cache"]["parts"]["refs"] > 4000 * 50
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "-d", "refs/tags/many/t0000"], check=True)
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "refs/tags/many/new", head], check=True)
    names = set(os.listdir(many))
    assert "new" in names and "t0000" not in names and len(names) == 4000


def test_wide_trees_are_held_compactly_and_within_the_cache_size(tmp_path, mount):
    """Three distinct 40,000-entry trees listed: what the mount keeps of them counts against
    --cache-size and shows in status, the trees kept for the entries the kernel holds stay
    within their share, and an entry of a tree let go still answers, as git says."""
    repo = tmp_path / "wide.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=b"wide\n",
                          capture_output=True, check=True).stdout.decode().strip()
    trees = []
    for prefix in "abc":
        lines = "".join(f"100644 blob {blob}\t{prefix}{i:05d}\n" for i in range(40_000))
        trees.append(subprocess.run(["git", "-C", str(repo), "mktree"], input=lines.encode(), capture_output=True,
                                    check=True).stdout.decode().strip())
    limit = 8 << 20
    m = mount(repo, "--cache-size", "8M")
    held = []
    for prefix, tree in zip("abc", trees):
        names = os.listdir(m.path / ".tree" / tree)
        assert names == [f"{prefix}{i:05d}" for i in range(40_000)]
        cache = status_of(m.path)["cache"]
        assert cache["limit"] == limit and cache["bytes"] == sum(cache["parts"].values())
        assert cache["parts"]["tree listings"] > 40_000 * 30  # the listing is accounted
        held.append(cache["parts"]["trees the kernel holds"])
    one_tree = held[0]
    assert one_tree > 40_000 * 30 and all(h <= max(limit // 4, one_tree) for h in held), held
    first = m.path / ".tree" / trees[0] / "a00007"  # its tree was let go: parsed again
    assert first.read_bytes() == b"wide\n" and first.stat().st_size == 5


def test_a_ref_link_asked_about_after_its_table_aged_reads_its_ref(refs_repo, mount):
    # Past the table's second of youth the link's size comes from reading the ref (in a
    # thread). That path once called itself for ever: stat gave EIO.
    m = mount(refs_repo)
    heads = m.path / ".refs" / "heads"
    names = [name for name in os.listdir(heads) if (heads / name).is_symlink()]
    assert names
    time.sleep(2.5)  # the table (1 s) and the kernel's entries and attributes (1 s) age
    for name in names:
        link = heads / name
        assert stat.S_ISLNK(os.lstat(link).st_mode)
        assert os.lstat(link).st_size == len(os.readlink(link)), name


def test_a_directory_s_subtrees_are_read_ahead_after_its_own_listing(refs_repo, mount):
    """Listing .tree/main starts reading its subtrees (docs, src, vendor) ahead, once its own
    sizes are in; a subdirectory opened afterwards finds its listing ready."""
    m = mount(refs_repo)
    top = m.path / ".tree" / "main"
    before = status_of(m.path)["tree listings"]
    assert sorted(os.listdir(top)) == sorted(line.split("\t", 1)[1] for line in git_lines(refs_repo, "ls-tree", "main"))
    deadline = time.monotonic() + 10
    while True:  # the subtrees are read in a worker, one job for the three: wait for it
        if status_of(m.path)["cache"]["parts"].get("trees read ahead", 0) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    for sub in ("docs", "src", "vendor"):
        assert sorted(os.listdir(top / sub)) == sorted(
            line.split("\t", 1)[1] for line in git_lines(refs_repo, "ls-tree", f"main:{sub}"))
    after = status_of(m.path)["tree listings"]
    assert after.get("read ahead", 0) - before.get("read ahead", 0) == 3, after
