"""odb.revision against git rev-parse: names, ids, abbreviations (and their ambiguity), peeling."""

from __future__ import annotations

import subprocess

import pytest

from limits import time_limit
from oracle import Git, colliding_prefixes, git_env
import odb
from odb import revision
from odb.refs.names import check_refname
from odb.refs import RefStore
from odb.revision import NotTreeish, decode_component, encode_component


@pytest.fixture(scope="module")
def repo(fixture_repo):
    return fixture_repo("refs")


@pytest.fixture(scope="module")
def objects(repo):
    with odb.open(repo.path) as s:
        yield s


@pytest.fixture(scope="module")
def refs(repo):
    return RefStore(repo.git_dir, None, odb.SHA1)


def rev_parse(git: Git, rev: str) -> str | None:
    return git.run("rev-parse", "--verify", "--quiet", rev, check=False).strip() or None


def commit_date(git: Git, rev: str) -> tuple[int, int]:
    seconds, zone = git.run("log", "-1", "--date=raw", "--format=%cd", rev).split()
    sign = -1 if zone[0] == "-" else 1
    return int(seconds), sign * (int(zone[1:3]) * 60 + int(zone[3:]))


def names_to_try(repo) -> list[str]:
    git = repo.git
    first = git.run("rev-list", "--max-parents=0", "main").strip()
    blob = git.rev_parse("main:README")
    tree = git.rev_parse("main^{tree}")
    return ["HEAD", "@", "main", "heads/main", "refs/heads/main", "feature/x", "heads/feature/x", "topic",
            "late", "dup", "heads/dup", "tags/dup", "v1.0", "v1.0-outer", "light", "light-tree", "tree-tag",
            "blob-tag", "origin", "origin/main", "remotes/origin/topic", "huge", "many", "doomed",
            git.run("tag", "-l", "[0-9a-f]*").split()[0],  # a tag named like an abbreviation
            first, first[:12], first[:4], tree, tree[:10], blob, blob[:9], blob.upper()[:8],
            "nosuchref", "refs/heads/nosuch", "", "heads", "refs", ".", "..", "HEAD/", "/main",
            "main~1", "main^", "main:README", "main@{0}", "..main", "refs/heads/../heads/main"]


def test_lookup_is_rev_parse_verify(repo, objects, refs):
    for rev in names_to_try(repo):
        expected = rev_parse(repo.git, rev) if rev else None
        try:
            got = revision.lookup(objects, refs, rev).oid.hex()
        except odb.ObjectNotFound:
            got = None
        except odb.AmbiguousPrefix:
            got = "ambiguous"
        if rev in ("main:README", "..main"):
            assert got is None and expected is not None  # a path in a tree, a range: not supported
        else:
            assert got == expected, rev


def test_resolve_is_rev_parse_tree(repo, objects, refs):
    for rev in names_to_try(repo):
        if not rev or ":" in rev or rev == "..main":
            continue
        expected = rev_parse(repo.git, rev + "^{tree}")
        try:
            got = revision.resolve(objects, refs, rev).tree.hex()
        except odb.ObjectNotFound:
            got = None
        assert got == expected, rev


def test_peeling_through_commits_and_tags(repo, objects, refs):
    found = revision.resolve(objects, refs, "v1.0-outer")  # a tag of a tag of a commit
    assert found.commit.hex() == rev_parse(repo.git, "v1.0-outer^{commit}")
    assert found.oid.hex() == rev_parse(repo.git, "v1.0-outer")
    assert tuple(found.date) == commit_date(repo.git, "v1.0-outer")
    assert found.ref == "refs/tags/v1.0-outer"
    tree_tag = revision.resolve(objects, refs, "tree-tag")  # a tag of a tree: no commit, no date
    assert tree_tag.commit is None and tree_tag.date is None
    assert tree_tag.tree.hex() == rev_parse(repo.git, "tree-tag^{tree}")
    head = revision.resolve(objects, refs, "HEAD")
    assert head.commit.hex() == rev_parse(repo.git, "HEAD") and tuple(head.date) == commit_date(repo.git, "HEAD")


def test_a_blob_is_not_treeish(objects, refs):
    with pytest.raises(NotTreeish, match="blob"):
        revision.resolve(objects, refs, "blob-tag")
    assert issubclass(NotTreeish, odb.ObjectNotFound)


def test_dwim_order_and_ambiguity_as_git(repo, objects, refs):
    dup = revision.lookup(objects, refs, "dup")
    assert dup.ref == "refs/tags/dup" and dup.also == ("refs/heads/dup",)  # git: "refname 'dup' is ambiguous"
    assert "refname 'dup' is ambiguous" in _stderr(repo.git, "rev-parse", "dup")
    short_named = repo.git.run("tag", "-l", "[0-9a-f]*").split()[0]
    assert revision.lookup(objects, refs, short_named).ref == f"refs/tags/{short_named}"
    full_named = [t for t in repo.git.run("tag", "-l").split() if len(t) == 40][0]
    assert revision.lookup(objects, refs, full_named).ref is None  # a full id is the object
    assert revision.lookup(objects, refs, "origin").ref == "refs/remotes/origin/HEAD"


def _stderr(git: Git, *args: str) -> str:
    return subprocess.run(git._argv(args), capture_output=True, env=git_env()).stderr.decode()


def test_ambiguous_abbreviations_are_settled_by_type_as_rev_parse_tree(repo, objects, refs):
    """Every 4-digit prefix that several objects share, against `git rev-parse <p>^{tree}`."""
    collisions = colliding_prefixes(repo.git.ids(), 4)
    settled = refused = 0
    for prefix, members in sorted(collisions.items()):
        with pytest.raises(odb.AmbiguousPrefix) as caught:
            revision.lookup(objects, refs, prefix)
        assert caught.value.candidates == repo.git.disambiguate(prefix) == members
        expected = rev_parse(repo.git, prefix + "^{tree}")
        try:
            got = revision.resolve(objects, refs, prefix).tree.hex()
            settled += 1
        except odb.AmbiguousPrefix as e:
            assert e.candidates == members
            got = None
            refused += 1
        assert got == expected, prefix
    assert settled and refused, "the fixture should have prefixes of both kinds"


def test_a_linked_worktree_has_its_own_head(repo, objects):
    wt_dir = repo.git_dir / "worktrees" / "wt"
    wt_refs = RefStore(wt_dir, repo.git_dir, odb.SHA1)
    git = Git(wt_dir, repo.path / "wt")
    assert revision.resolve(objects, wt_refs, "HEAD").tree.hex() == rev_parse(git, "HEAD^{tree}")
    assert revision.lookup(objects, wt_refs, "bisect/bad").oid.hex() == rev_parse(git, "bisect/bad")


def test_slashes_in_a_path_component(repo, refs, objects):
    for ref in refs.list():
        component = encode_component(ref.name)
        assert "/" not in component and decode_component(component) == ref.name
        short = ref.name.removeprefix("refs/")
        assert revision.lookup(objects, refs, decode_component(encode_component(short))).ref is not None
    assert decode_component("feature:x") == "feature/x" and encode_component("heads/main") == "heads:main"
    assert revision.resolve(objects, refs, decode_component("heads:feature:x")).tree.hex() == \
        rev_parse(repo.git, "feature/x^{tree}")
    # ":" can never be part of a ref name, so the mapping cannot collide
    assert not check_refname("refs/heads/a:b")


def test_a_long_tag_chain_is_refused(repo_copy):
    copy = repo_copy("refs")
    git = copy.git
    previous = "v1.0"
    for i in range(revision.MAX_TAG_DEPTH + 2):
        git.run("tag", "-a", f"chain{i}", "-m", "chain", previous)
        previous = f"chain{i}"
    with odb.open(copy.path) as objects, time_limit(10):
        refs = RefStore(copy.git_dir, None, odb.SHA1)
        assert revision.resolve(objects, refs, "chain0").tree.hex() == rev_parse(git, "chain0^{tree}")
        with pytest.raises(odb.CorruptObject, match="nested more than"):
            revision.resolve(objects, refs, previous)
    assert rev_parse(git, previous + "^{tree}")  # git has no limit


def test_a_damaged_commit_on_the_way_is_corrupt(tmp_path):
    path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=git_env())
    git = Git(path)
    bad = git.run_bytes("hash-object", "-t", "commit", "--literally", "-w", "--stdin",
                        input=b"tree nothex\n\nbroken\n").decode().strip()
    (path / "refs" / "heads" / "bad").write_text(bad + "\n")  # update-ref refuses such a commit
    with odb.open(path) as objects:
        with pytest.raises(odb.CorruptObject, match="bad tree pointer"):
            revision.resolve(objects, RefStore(path, None, odb.SHA1), "bad")
