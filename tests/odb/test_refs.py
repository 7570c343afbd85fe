"""odb.refs against git: loose and packed refs, symrefs, worktrees, and refs that git would not use."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from limits import time_limit
from oracle import Git
import odb
from odb.refs import packed as packed_refs, store as refs_module
from odb.refs.names import check_refname, is_root_ref, parse_worktree_ref
from odb.refs import RefStore, config_value, ref_storage

FORMAT = "%(objectname) %(refname) %(symref)"


def git_listing(git: Git) -> list[str]:
    return git.run("for-each-ref", f"--format={FORMAT}").splitlines()


def our_listing(store: RefStore) -> list[str]:
    """Our refs as for-each-ref prints them: it leaves out symrefs that resolve to nothing."""
    return [f"{r.oid.hex()} {r.name} {r.target or ''}" for r in store.list(root_refs=False) if r.oid]


@pytest.fixture(scope="module")
def repo(fixture_repo):
    return fixture_repo("refs")


@pytest.fixture(scope="module")
def store(repo):
    return RefStore(repo.git_dir, None, odb.SHA1)


@pytest.fixture
def copy(repo_copy):
    """A private copy of the refs fixture: (RefStore, Git, git dir)."""
    r = repo_copy("refs")
    return RefStore(r.git_dir, None, odb.SHA1), r.git, r.git_dir


def rev_parse(git: Git, name: str) -> str | None:
    out = git.run("rev-parse", "--verify", "--quiet", name, check=False).strip()
    return out or None


# ---- the fixture, as git lists it -----------------------------------------------------------------


def test_list_is_for_each_ref(repo, store):
    assert our_listing(store) == git_listing(repo.git)


def test_the_fixture_has_what_the_tests_rely_on(repo, store):
    packed = packed_refs.PackedRefsFile(str(repo.git_dir / "packed-refs"), odb.SHA1).load()
    listed = {r.name: r for r in store.list()}
    # packed, then updated loose: the loose value is the one listed
    assert packed.refs["refs/heads/main"].oid != listed["refs/heads/main"].oid
    assert packed.refs["refs/heads/topic"].oid != listed["refs/heads/topic"].oid
    assert "refs/heads/late" not in packed.refs and "refs/heads/late" in listed
    assert "refs/heads/doomed" not in listed
    assert listed["refs/remotes/origin/HEAD"].target == "refs/remotes/origin/main"
    assert "refs/heads/feature/x" in listed
    assert (repo.git_dir / "worktrees" / "wt").is_dir()


def test_list_comes_sorted_by_name_bytes(store):
    names = [r.name for r in store.list()]
    assert names == sorted(names, key=os.fsencode)


def test_root_refs_come_first_and_head_is_gits(repo, store):
    listed = store.list()
    head = listed[0]
    assert head.name == "HEAD"
    assert head.target == repo.git.run("symbolic-ref", "HEAD").strip()
    assert head.oid.hex() == rev_parse(repo.git, "HEAD")
    assert all(is_root_ref(r.name) for r in listed if not r.name.startswith("refs/"))
    assert [r for r in listed if r.name.startswith("refs/")] == store.list(root_refs=False)


def test_every_ref_resolves_as_rev_parse_says(repo, store):
    for ref in store.list():
        assert store.resolve(ref.name).oid.hex() == rev_parse(repo.git, ref.name), ref.name


def test_head(repo, store):
    assert store.head().oid.hex() == rev_parse(repo.git, "HEAD")
    assert store.head().target == "refs/heads/main"


def test_read_gives_one_level(store):
    origin_head = store.read("refs/remotes/origin/HEAD")
    assert origin_head.target == "refs/remotes/origin/main" and origin_head.oid is None
    assert store.resolve("refs/remotes/origin/HEAD").oid == store.read("refs/remotes/origin/main").oid
    assert store.read("refs/heads/nope") is None


def test_packed_peeled_values_are_what_tags_peel_to(repo, store):
    peeled = {r.name: r.peeled for r in store.list() if r.peeled}
    assert {"refs/tags/v1.0", "refs/tags/v1.0-outer", "refs/tags/tree-tag", "refs/tags/blob-tag"} <= set(peeled)
    for name, oid in peeled.items():
        assert oid.hex() == rev_parse(repo.git, name + "^{}")


def test_a_linked_worktree_has_its_own_head_and_per_worktree_refs(repo):
    wt_dir = repo.git_dir / "worktrees" / "wt"
    wt = RefStore(wt_dir, repo.git_dir, odb.SHA1)
    git = Git(wt_dir, repo.path / "wt")
    assert our_listing(wt) == git_listing(git)
    names = {r.name for r in wt.list()}
    assert {"refs/bisect/bad", "refs/worktree/mark"} <= names and "refs/bisect/main-only" not in names
    assert wt.head().oid.hex() == rev_parse(git, "HEAD") != rev_parse(repo.git, "HEAD")
    assert wt.head().target is None  # detached
    # ...and the main worktree's view of the same names
    main = RefStore(repo.git_dir, None, odb.SHA1)
    assert main.read("refs/bisect/bad") is None and main.read("refs/bisect/main-only") is not None
    assert main.read("worktrees/wt/HEAD").oid == wt.head().oid
    assert wt.read("main-worktree/HEAD").target == "refs/heads/main"


def test_refs_are_read_live(copy):
    store, git, _ = copy
    before = our_listing(store)
    git.run("update-ref", "refs/heads/new", store.head().oid.hex())
    git.run("update-ref", "-d", "refs/heads/late")
    after = our_listing(store)
    assert after != before and after == git_listing(git)


def test_packed_refs_is_parsed_again_only_when_it_changes(copy, monkeypatch):
    store, git, _ = copy
    calls = []
    real = packed_refs.parse
    monkeypatch.setattr(packed_refs, "parse", lambda *a: calls.append(1) or real(*a))
    store.list()
    store.list()
    store.resolve("refs/tags/v1.0")
    assert len(calls) == 1
    git.run("pack-refs", "--all")  # rewrites packed-refs (a new file)
    assert our_listing(store) == git_listing(git)
    assert len(calls) == 2


def test_symref_chains_stop_where_gits_do(copy):
    store, git, _ = copy
    # s4 -> main is one hop; git reads at most five refs for one resolve.
    previous = "refs/heads/main"
    for i in range(4, -1, -1):
        git.run("symbolic-ref", f"refs/heads/s{i}", previous)
        previous = f"refs/heads/s{i}"
    for i in range(5):
        ours = store.resolve(f"refs/heads/s{i}")
        assert (ours.oid.hex() if ours else None) == rev_parse(git, f"refs/heads/s{i}"), i
    assert store.resolve("refs/heads/s1") is not None and store.resolve("refs/heads/s0") is None
    assert our_listing(store) == git_listing(git)


def test_a_symref_loop_resolves_to_nothing(copy):
    store, git, _ = copy
    git.run("symbolic-ref", "refs/heads/a", "refs/heads/b")
    git.run("symbolic-ref", "refs/heads/b", "refs/heads/a")
    with time_limit(5):
        assert store.resolve("refs/heads/a") is None
        assert our_listing(store) == git_listing(git)


def test_a_dangling_symref_is_listed_without_an_id(copy):
    store, git, _ = copy
    git.run("symbolic-ref", "refs/heads/ghost", "refs/heads/nothing")
    ghost = [r for r in store.list() if r.name == "refs/heads/ghost"]
    assert ghost == [refs_module.Ref("refs/heads/ghost", None, "refs/heads/nothing")]
    assert store.resolve("refs/heads/ghost") is None
    assert our_listing(store) == git_listing(git)


def test_an_unborn_head(fixture_repo):
    empty = fixture_repo("empty")
    store = RefStore(empty.git_dir, None, odb.SHA1)
    assert store.head() is None
    assert store.read("HEAD").target == "refs/heads/main"
    assert store.list() == [refs_module.Ref("HEAD", None, "refs/heads/main")]
    assert store.list(root_refs=False) == []


def test_a_symlink_to_a_ref_name_is_a_symref_as_in_old_git(copy):
    store, git, git_dir = copy
    os.symlink("refs/heads/main", git_dir / "refs" / "heads" / "linked")
    assert store.read("refs/heads/linked").target == "refs/heads/main"
    assert store.resolve("refs/heads/linked").oid.hex() == rev_parse(git, "refs/heads/linked")
    # The link's text is a ref name, not a path that leads anywhere: git's listing (which
    # follows symlinks to see what they are) does not show it, and neither do we.
    assert our_listing(store) == git_listing(git)
    (git_dir / "HEAD").unlink()
    os.symlink("refs/heads/topic", git_dir / "HEAD")  # how git once wrote HEAD; this one leads somewhere
    assert store.head().target == "refs/heads/topic"
    assert store.head().oid.hex() == rev_parse(git, "HEAD")
    assert store.list()[0] == store.head()


# ---- refs git would not use -----------------------------------------------------------------------


def test_a_huge_ref_file_is_refused(copy, caplog):
    store, git, git_dir = copy
    huge = git_dir / "refs" / "heads" / "huge-file"
    # A valid id followed by whitespace would be taken by git, which reads the whole file;
    # we read at most MAX_LOOSE_REF bytes of a ref and refuse what is longer.
    huge.write_bytes(store.head().oid.hex().encode() + b"\n" + b" " * (8 << 20))
    with time_limit(5), caplog.at_level(logging.WARNING, "odb"):
        assert store.read("refs/heads/huge-file") is None
        names = {r.name for r in store.list()}
    assert "refs/heads/huge-file" not in names and "refs/heads/main" in names
    assert "more than" in caplog.text


def test_a_ref_file_that_is_not_an_id(copy):
    store, git, git_dir = copy
    (git_dir / "refs" / "heads" / "garbage").write_bytes(b"not a ref at all\n")
    (git_dir / "refs" / "heads" / "nullid").write_bytes(b"0" * 40 + b"\n")
    assert store.read("refs/heads/garbage") is None and store.read("refs/heads/nullid") is None
    assert our_listing(store) == git_listing(git)


def test_a_symlink_loop_in_refs_is_refused(copy, caplog):
    store, git, git_dir = copy
    os.symlink("loop", git_dir / "refs" / "heads" / "loop")
    with time_limit(5), caplog.at_level(logging.WARNING, "odb"):
        assert store.read("refs/heads/loop") is None
        assert our_listing(store) == git_listing(git)
    assert "symlink loop" in caplog.text


def test_a_directory_cycle_in_refs_is_walked_once(copy):
    store, git, git_dir = copy
    os.symlink("../heads", git_dir / "refs" / "heads" / "dirloop")
    with time_limit(5):
        ours = our_listing(store)
    # git follows the cycle until the kernel's 40 links, listing every branch again at each
    # level; each directory is walked once here.
    assert ours == [line for line in git_listing(git) if "/dirloop/" not in line]


def test_a_fifo_in_place_of_a_ref_never_blocks(copy):
    store, git, git_dir = copy
    os.mkfifo(git_dir / "refs" / "heads" / "fifo")
    os.mkfifo(git_dir / "refs" / "heads" / "fifo-named-like-packed")
    with time_limit(5):
        assert store.read("refs/heads/fifo") is None
        listed = {r.name for r in store.list()}
    assert "refs/heads/fifo" not in listed and "refs/heads/main" in listed


def test_names_git_refuses_are_left_out(copy):
    store, git, git_dir = copy
    oid = store.head().oid.hex().encode() + b"\n"
    for name in ("bad..name", "sp ace", "trailing.", "colon:name", ".hidden", "x.lock"):
        (git_dir / "refs" / "heads" / name).write_bytes(oid)
    assert our_listing(store) == git_listing(git)
    assert store.read("refs/heads/sp ace") is None
    # a name that would leave the git dir is never turned into a path
    assert store.read("refs/../../etc/passwd") is None and store.resolve("../HEAD") is None


def test_a_directory_where_a_packed_ref_is_named_lets_the_packed_one_show(copy):
    store, git, git_dir = copy
    # refs/heads/dup is packed only; an empty directory of that name is no loose ref.
    (git_dir / "refs" / "heads" / "dup").mkdir()
    assert store.read("refs/heads/dup").oid.hex() == rev_parse(git, "refs/heads/dup")
    assert our_listing(store) == git_listing(git)


@pytest.mark.parametrize("damage", [
    "garbage line\n",
    "^" + "1" * 40 + "\n",                                # a peeled line with no ref before it
    "1234 refs/heads/short\n",                            # a short id
    "# not the pack-refs header\n",
])
def test_a_malformed_packed_refs_is_ignored_and_loose_refs_still_serve(copy, damage, caplog):
    store, git, git_dir = copy
    good = {r.name: r for r in store.list()}
    packed_path = git_dir / "packed-refs"
    text = packed_path.read_text()
    if damage.startswith("#"):
        text = damage + text.split("\n", 1)[1]
    else:
        text += damage
    packed_path.write_text(text)
    with caplog.at_level(logging.WARNING, "odb"):
        listed = {r.name: r for r in store.list()}
    loose = {"refs/heads/main", "refs/heads/topic", "refs/heads/late", "refs/remotes/origin/HEAD"}
    assert loose <= set(listed)
    for name in loose - {"refs/remotes/origin/HEAD"}:
        assert listed[name] == good[name]
    assert "refs/tags/v1.0" not in listed  # packed only
    assert "packed-refs" in caplog.text
    # git refuses the file outright
    assert git.run_bytes("for-each-ref", check=False) == b""


def test_an_unterminated_packed_refs_is_refused(copy):
    store, git, git_dir = copy
    packed_path = git_dir / "packed-refs"
    packed_path.write_bytes(packed_path.read_bytes().rstrip(b"\n"))
    with pytest.raises(odb.CorruptObject, match="unterminated"):
        packed_refs.PackedRefsFile(str(packed_path), odb.SHA1).load()
    assert "refs/tags/v1.0" not in {r.name for r in store.list()}


def test_a_huge_packed_refs_is_refused(copy, monkeypatch):
    store, git, git_dir = copy
    monkeypatch.setattr(packed_refs, "MAX_PACKED_REFS", 100)
    with pytest.raises(odb.CorruptObject, match="more than 100"):
        packed_refs.PackedRefsFile(str(git_dir / "packed-refs"), odb.SHA1).load()
    listed = {r.name for r in store.list()}
    assert "refs/heads/main" in listed and "refs/tags/v1.0" not in listed


def test_a_fifo_in_place_of_packed_refs(copy):
    store, git, git_dir = copy
    (git_dir / "packed-refs").unlink()
    os.mkfifo(git_dir / "packed-refs")
    with time_limit(5):
        assert "refs/heads/main" in {r.name for r in store.list()}


def test_an_unsorted_packed_refs_without_the_sorted_trait_is_sorted(copy):
    store, git, git_dir = copy
    packed_path = git_dir / "packed-refs"
    header, *lines = packed_path.read_text().splitlines(keepends=True)
    records = []
    for line in lines:
        if line.startswith("^"):
            records[-1] += line
        else:
            records.append(line)
    packed_path.write_text("# pack-refs with: peeled fully-peeled \n" + "".join(reversed(records)))
    assert our_listing(store) == git_listing(git)


# ---- names and configuration ----------------------------------------------------------------------


NAMES = ["HEAD", "refs/heads/main", "refs/heads/feature/x", "main", "a/b", "refs/heads/.x", "refs/heads/x.",
         "refs/heads/x.lock", "refs/heads/a..b", "refs/heads/a@{b", "refs/heads/@", "@", "refs/heads/a b",
         "refs/heads/a:b", "refs/heads/a?b", "refs/heads/a[b", "refs/heads/a\\b", "refs/heads/a^b",
         "refs/heads/a~b", "refs/heads/a*b", "refs/heads/a\x7fb", "refs/heads/a\tb", "/refs/heads/a",
         "refs/heads/a/", "refs//heads", "refs/heads/é", "refs/heads/a.lock/b", "refs/heads/.lock",
         "refs/heads/a@b", "refs/heads/{a}", "refs/heads/a.b", "refs/heads/-dash", ""]


@pytest.mark.parametrize("onelevel", [True, False])
def test_check_refname_is_git_check_ref_format(onelevel):
    flags = ["--allow-onelevel"] if onelevel else ["--no-allow-onelevel"]
    for name in NAMES:
        proc = subprocess.run(["git", "check-ref-format", *flags, name], capture_output=True)
        assert check_refname(name, allow_onelevel=onelevel) == (proc.returncode == 0), repr(name)


def test_worktree_names():
    assert parse_worktree_ref("HEAD").kind == "current"
    assert parse_worktree_ref("refs/bisect/bad").kind == "current"
    assert parse_worktree_ref("refs/heads/main").kind == "shared"
    assert parse_worktree_ref("worktrees/wt/HEAD") == ("other", "wt", "HEAD")
    assert parse_worktree_ref("worktrees/wt/refs/heads/x").kind == "shared"
    assert parse_worktree_ref("main-worktree/HEAD") == ("main", None, "HEAD")
    assert [n for n in ("HEAD", "ORIG_HEAD", "FETCH_HEAD", "MERGE_HEAD", "AUTO_MERGE", "FOO", "head")
            if is_root_ref(n)] == ["HEAD", "ORIG_HEAD", "AUTO_MERGE"]


def test_ref_storage_is_read_from_the_config(tmp_path):
    config = tmp_path / "config"
    assert ref_storage(str(tmp_path)) == "files"
    config.write_text("[core]\n\trepositoryformatversion = 1\n[extensions]\n\trefStorage = reftable\n")
    assert ref_storage(str(tmp_path)) == "reftable"
    config.write_text("[Extensions] RefStorage = \"files\" ; a comment\n[other]\nrefstorage = reftable\n")
    assert config_value(str(config), "extensions", "refstorage") == "files"
    config.write_bytes(b"[user]\nname = \xff\xfe\n[extensions]\nrefstorage=reftable\n")
    assert ref_storage(str(tmp_path)) == "reftable"


def test_fetch_head_is_read_from_its_first_line(copy):
    store, git, git_dir = copy
    oid = store.head().oid.hex()
    (git_dir / "FETCH_HEAD").write_text(f"{oid}\t\tbranch 'main' of somewhere\n" * 200)
    assert store.resolve("FETCH_HEAD").oid.hex() == rev_parse(git, "FETCH_HEAD") == oid
    assert "FETCH_HEAD" not in {r.name for r in store.list()}  # a pseudo ref, never listed


def test_list_of_one_directory(repo, store):
    everything = store.list()
    for prefix in ("refs/", "refs/tags/", "refs/heads/", "refs/heads/feature/", "refs/remotes/origin/",
                   "refs/bisect/", "refs/nothing/"):
        assert store.list(prefix) == [r for r in everything if r.name.startswith(prefix)]
        assert [f"{r.oid.hex()} {r.name} {r.target or ''}" for r in store.list(prefix) if r.oid] == \
            repo.git.run("for-each-ref", f"--format={FORMAT}", prefix).splitlines()
    with pytest.raises(ValueError):
        store.list("refs/heads")
