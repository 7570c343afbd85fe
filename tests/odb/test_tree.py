"""odb.objects.tree and odb.objects.object_headers against git: ls-tree, log and for-each-ref, and
trees git never writes."""

from __future__ import annotations

import subprocess

import pytest

from limits import memory_limit, time_limit
from oracle import Git, git_env
import odb
from odb.objects.object_headers import GitDate, parse_commit, parse_tag
from odb.objects.tree import BLOB, EXECUTABLE, GITLINK, SYMLINK, TREE, Tree, canon_mode, name_problem

KIND = {TREE: "tree", BLOB: "blob", EXECUTABLE: "blob", SYMLINK: "blob", GITLINK: "commit"}


@pytest.fixture(scope="module")
def repo(fixture_repo):
    return fixture_repo("refs")


@pytest.fixture(scope="module")
def store(repo):
    with odb.open(repo.path) as s:
        yield s


def tree_of(repo, rev: str) -> bytes:
    return bytes.fromhex(repo.git.rev_parse(rev + "^{tree}"))


def walk(store, root: bytes):
    """(mode, oid, path) of every entry below root, pre-order as `git ls-tree -r -t` prints
    them, with a stack of iterators (no recursion: trees are 1000 levels deep here)."""
    stack = [(b"", Tree(store.read(root)[1], store.format, root).entries())]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        path = prefix + entry.name
        yield entry.mode, entry.oid, path
        if entry.mode == TREE:
            stack.append((path + b"/", Tree(store.read(entry.oid)[1], store.format, entry.oid).entries()))


def ls_tree(git: Git, rev: str, *args: str) -> list[tuple[int, str, bytes, bytes]]:
    out = git.run_bytes("ls-tree", "-z", *args, rev)
    rows = []
    for record in out.split(b"\0")[:-1]:
        meta, path = record.split(b"\t", 1)
        mode, kind, oid = meta.split(b" ")
        rows.append((int(mode, 8), kind.decode(), bytes.fromhex(oid.decode()), path))
    return rows


# ---- the fixture's trees ----------------------------------------------------------------------------


@pytest.mark.parametrize("rev", ["main", "feature/x", "v1.0", "huge", "many"])
def test_recursive_walk_is_ls_tree_r_t(repo, store, rev):
    root = tree_of(repo, rev)
    ours = [(mode, KIND[mode], oid, path) for mode, oid, path in walk(store, root)]
    assert ours == ls_tree(repo.git, rev, "-r", "-t")


def test_the_fixture_has_every_mode_and_the_big_trees(repo, store):
    modes = {mode for mode, _, _ in walk(store, tree_of(repo, "main"))}
    assert modes == {TREE, BLOB, EXECUTABLE, SYMLINK, GITLINK}
    paths = [path for _, _, path in walk(store, tree_of(repo, "huge"))]
    assert max(path.count(b"/") for path in paths) == 1000
    assert sum(path.startswith(b"wide/") for path in paths) == 100_000


def test_find_every_name_and_no_other(repo, store):
    for rev in ("main", "main:docs", "huge", "huge:wide"):
        oid = bytes.fromhex(repo.git.rev_parse(rev if ":" in rev else rev + "^{tree}"))
        tree = Tree(store.read(oid)[1], store.format, oid)
        rows = ls_tree(repo.git, oid.hex())
        for mode, _, entry_oid, name in rows[:: max(1, len(rows) // 500)]:
            assert tree.find(name) == (mode, name, entry_oid)
        for absent in (b"", b"zzz", b"f", b"f0999999", b"docs/", b"READM", b"README0", b".", b".."):
            assert tree.find(absent) is None


def test_walking_the_100k_directory_builds_one_entry_at_a_time(repo, store):
    wide = bytes.fromhex(repo.git.rev_parse("huge:wide"))
    data = store.read(wide)[1]
    assert len(data) > 3_000_000
    tree = Tree(data, store.format, wide)
    with memory_limit(64 << 10), time_limit(10):
        count = sum(1 for _ in tree.entries())
    assert count == 100_000
    # The lookup index is two small arrays, not 100k entries (those would take ~15 MB).
    with memory_limit(2 << 20), time_limit(10):
        assert tree.find(b"f099999").name == b"f099999"


def test_walking_1000_levels_down_keeps_memory_flat(repo, store):
    oid = bytes.fromhex(repo.git.rev_parse("huge:deep"))
    depth = 1
    with memory_limit(256 << 10), time_limit(20):
        while True:
            tree = Tree(store.read(oid)[1], store.format, oid)
            entry = tree.find(b"d")
            if entry is None:
                break
            oid, depth = entry.oid, depth + 1
        assert tree.find(b"leaf.txt").mode == BLOB
    assert depth == 1000


# ---- trees git never writes ---------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path):
    """An empty repository, and a way to write any bytes as a tree object in it."""
    path = tmp_path / "scratch.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=git_env())
    git = Git(path)
    blob = git.run("hash-object", "-w", "--stdin", input="hi\n").strip()

    def write(body: bytes, kind: str = "tree") -> str:
        return git.run_bytes("hash-object", "-t", kind, "--literally", "-w", "--stdin", input=body).decode().strip()

    return git, bytes.fromhex(blob), write


def test_odd_modes_are_canonical_as_in_git(scratch):
    git, blob, write = scratch
    modes = [b"100664", b"40000", b"100600", b"0", b"120777", b"170000", b"040000", b"1100644", b"100755",
             b"000000100644", b"160000", b"777"]
    body = b"".join(m + b" n%02d\0" % i + blob for i, m in enumerate(modes))
    oid = write(body)
    with odb.open(git.git_dir) as store:
        ours = [(e.mode, KIND[e.mode], e.oid, e.name)
                for e in Tree(store.read(oid)[1], store.format, bytes.fromhex(oid)).entries()]
    assert ours == ls_tree(git, oid)
    assert canon_mode(0o100664) == BLOB and canon_mode(0o100700) == EXECUTABLE and canon_mode(0) == GITLINK


@pytest.mark.parametrize("body", [
    b"100644 a\0" + b"x" * 10,                 # the id cut off
    b"100644 a",                              # no NUL
    b"100644",                                # no space
    b" a\0" + b"x" * 20,                      # no mode
    b"10a644 a\0" + b"x" * 20,                # not octal
    b"100644 a\0" + b"x" * 20 + b"100644 b",  # a second entry cut off
])
def test_a_corrupt_tree_is_refused_as_git_refuses_it(scratch, body):
    git, blob, write = scratch
    oid = write(body)
    assert subprocess.run(["git", f"--git-dir={git.git_dir}", "ls-tree", oid], capture_output=True,
                          env=git_env()).returncode != 0
    with odb.open(git.git_dir) as store:
        tree = Tree(store.read(oid)[1], store.format, bytes.fromhex(oid))
        with pytest.raises(odb.CorruptObject) as caught:
            list(tree.entries())
        assert caught.value.oid == oid
        with pytest.raises(odb.CorruptObject):
            tree.find(b"zzz")


def test_names_that_cannot_be_path_components_are_reported_not_yielded(scratch):
    git, blob, write = scratch
    names = [b"", b".", b"..", b".git", b".GIT", b"a/b", b"fine", b"fine", b"also fine", b"\xff\xfe"]
    body = b"".join(b"100644 " + n + b"\0" + blob for n in names)
    oid = write(body)
    skipped = []
    with odb.open(git.git_dir) as store:
        tree = Tree(store.read(oid)[1], store.format, bytes.fromhex(oid))
        good = [e.name for e in tree.entries(lambda name, why: skipped.append((name, why)))]
        assert good == [b"fine", b"also fine", b"\xff\xfe"]
        assert [n for n, _ in skipped] == [b"", b".", b"..", b".git", b".GIT", b"a/b", b"fine"]
        assert "duplicate" in skipped[-1][1]
        for name in (b".", b"..", b"a/b", b".git", b""):
            assert tree.find(name) is None
        assert tree.find(b"fine").name == b"fine"  # out of git's order: found by a scan
    assert name_problem(b"ok.txt") is None


# ---- commit and tag headers -------------------------------------------------------------------------


def date_of(seconds: str, zone: str) -> GitDate:
    sign = -1 if zone[0] == "-" else 1
    return GitDate(int(seconds), sign * (int(zone[1:3]) * 60 + int(zone[3:5])))


def test_every_commit_parses_as_git_log_says(repo, store):
    out = repo.git.run("log", "--all", "--date=raw", "--format=%H %T %cd %ad %P")
    assert len(out.splitlines()) > 1000
    for line in out.splitlines():
        oid, tree, ct, cz, at, az, *parents = line.split()
        commit = parse_commit(store.read(oid)[1], store.format, bytes.fromhex(oid))
        assert commit.tree.hex() == tree
        assert [p.hex() for p in commit.parents] == parents
        assert commit.committer_date == date_of(ct, cz) and commit.author_date == date_of(at, az)


def test_every_annotated_tag_parses_as_for_each_ref_says(repo, store):
    out = repo.git.run("for-each-ref", "refs/tags", "--format=%(objectname) %(objecttype) %(object) %(type) "
                       "%(tag) %(taggerdate:raw)")
    tags = [line.split() for line in out.splitlines() if line.split()[1] == "tag"]
    assert len(tags) >= 4
    for oid, _, target, kind, name, seconds, zone in tags:
        tag = parse_tag(store.read(oid)[1], store.format, bytes.fromhex(oid))
        assert (tag.object.hex(), tag.kind, tag.name.decode()) == (target, kind, name)
        assert tag.tagger_date == date_of(seconds, zone)


def test_hand_made_headers(scratch):
    git, blob, write = scratch
    tree = write(b"100644 a\0" + blob)
    zone = write(f"tree {tree}\nauthor A <a@b> 1600000000 +0530\ncommitter C <c@d> 1700000000 -0130\n"
                 "gpgsig -----BEGIN-----\n x\n -----END-----\n\nmessage\ncommitter X <x> 1 +0000\n".encode(),
                 "commit")
    assert git.run("log", "-1", "--date=raw", "--format=%cd %ad", zone).split() == [
        "1700000000", "-0130", "1600000000", "+0530"]
    with odb.open(git.git_dir) as store:
        commit = parse_commit(store.read(zone)[1], store.format)
        assert commit.committer_date == GitDate(1700000000, -90)
        assert commit.author_date == GitDate(1600000000, 330)
        # no committer line, a date git cannot read: no date rather than 1970
        bare = write(f"tree {tree}\n\nno idents\n".encode(), "commit")
        assert parse_commit(store.read(bare)[1], store.format).committer_date is None
        odd = write(f"tree {tree}\ncommitter C <c@d> soon\n\n".encode(), "commit")
        assert parse_commit(store.read(odd)[1], store.format).committer_date is None
        for body in (b"parent " + b"0" * 40 + b"\n", f"tree {tree[:-1]}\n".encode(), b"",
                     f"tree {tree}\nparent nothex\n".encode()):
            with pytest.raises(odb.CorruptObject):
                parse_commit(body, store.format)
        for body in (b"type commit\n", f"object {tree}\ntype spoon\n".encode(), f"object {tree}\n".encode()):
            with pytest.raises(odb.CorruptObject):
                parse_tag(body, store.format)
        old = parse_tag(f"object {tree}\ntype tree\ntag t\n\nno tagger\n".encode(), store.format)
        assert old.tagger_date is None and old.kind == "tree"


# ---- the index by position (odb/_tree.c, or the Python loop) ----------------------------------------


@pytest.fixture(params=["c", "python"])
def implementation(request, monkeypatch):
    import odb.objects.tree
    if request.param == "c":
        if odb.objects.tree.compiled is None:
            pytest.skip("odb/_tree.c is not built")
        monkeypatch.setattr(odb.objects.tree, "_accelerator", odb.objects.tree.compiled)
    else:
        monkeypatch.setattr(odb.objects.tree, "_accelerator", None)
    return request.param


def by_position(tree: Tree) -> list[tuple[int, bytes, bytes]]:
    return [(tree.mode_at(i), tree.oid_at(i), tree.name_at(i)) for i in range(len(tree))]


@pytest.mark.parametrize("rev", ["main", "main:docs", "huge", "huge:wide", "many"])
def test_entries_by_position_are_ls_tree(repo, store, rev, implementation):
    oid = bytes.fromhex(repo.git.rev_parse(rev if ":" in rev else rev + "^{tree}"))
    tree = Tree(store.read(oid)[1], store.format, oid)
    rows = ls_tree(repo.git, oid.hex())
    assert by_position(tree) == [(mode, entry_oid, name) for mode, _, entry_oid, name in rows]
    assert tree.ids(0, len(tree)) == b"".join(entry_oid for _, _, entry_oid, _ in rows)
    for i in range(0, len(rows), max(1, len(rows) // 300)):
        assert tree.position(rows[i][3]) == i


def test_the_index_leaves_out_what_entries_leaves_out(scratch, implementation):
    git, blob, write = scratch
    names = [b"", b".", b"..", b".git", b".GIT", b"a/b", b"fine", b"fine", b"also fine", b".gitignore"]
    odd = write(b"".join(b"100644 " + n + b"\0" + blob for n in names))
    modes = write(b"".join(m + b" n%02d\0" % i + blob for i, m in enumerate([b"100664", b"40000", b"0", b"100755"])))
    with odb.open(git.git_dir) as store:
        for oid in (odd, modes):
            data = store.read(oid)[1]
            skipped = []
            tree = Tree(data, store.format, bytes.fromhex(oid))
            assert len(tree) == tree.index(lambda name, why: skipped.append(name))  # reported once
            assert by_position(tree) == [(e.mode, e.oid, e.name) for e in Tree(data, store.format).entries()]
        assert skipped == []  # the second tree has nothing to leave out
        assert [tree.name_at(i) for i in range(len(tree))] == [b"n00", b"n01", b"n02", b"n03"]


@pytest.mark.parametrize("body", [b"100644 a\0" + b"x" * 10, b"100644 a", b"10a644 a\0" + b"x" * 20])
def test_a_corrupt_tree_is_refused_by_the_index(scratch, body, implementation):
    git, blob, write = scratch
    oid = write(body)
    with odb.open(git.git_dir) as store:
        with pytest.raises(odb.CorruptObject):
            len(Tree(store.read(oid)[1], store.format, bytes.fromhex(oid)))
