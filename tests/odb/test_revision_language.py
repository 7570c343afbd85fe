"""odb.revision's expressions (~, ^, ^{...}, @{...}, :/) against `git rev-parse --verify`."""

from __future__ import annotations

import pytest

from limits import time_limit
import odb
from odb import revision
from odb.refs import RefStore
from odb.revision import BadRevision, decode_component, encode_component


@pytest.fixture(scope="module")
def repo(fixture_repo):
    return fixture_repo("history")


@pytest.fixture(scope="module")
def objects(repo):
    with odb.open(repo.path) as s:
        yield s


@pytest.fixture(scope="module")
def refs(repo):
    return RefStore(repo.git_dir, None, odb.SHA1)


def rev_parse(repo, rev: str) -> str | None:
    return repo.git.run("rev-parse", "--verify", "--quiet", rev, check=False).strip() or None


def ours(objects, refs, rev: str) -> str | None:
    try:
        return revision.lookup(objects, refs, rev).oid.hex()
    except odb.ObjectNotFound:
        return None


def reflog_dates(repo, ref: str) -> list[int]:
    return [int(line) for line in repo.git.run("log", "-g", "--format=%gd", "--date=unix", ref).split()
            if line.isdigit()] or [int(x.split("@{")[1].rstrip("}")) for x in
                                   repo.git.run("log", "-g", "--date=unix", "--format=%gd", ref).split()]


EXPRESSIONS = [
    # ancestry
    "main~1", "main~", "main~3", "main~40", "main~41", "main~42", "main~45", "main~1000", "main^",
    "main^1", "main^2", "main^0", "main~2^2", "main~2^3", "main~2^4", "main~2^2~1", "main~42^2",
    "main~43^2^", "main^^^", "main~1~1~1", "HEAD~2", "@~2", "@^", "v1.0~1", "v1.0^2", "v1.0-outer~2",
    "v1.0^3", "light~1", "light~2", "tree-tag~1", "main^{tree}~1",
    # peeling
    "v1.0^{}", "v1.0-outer^{}", "v1.0-outer^{commit}", "v1.0-outer^{tree}", "v1.0-outer^{tag}",
    "v1.0-outer^{object}", "v1.0^{blob}", "main^{tree}", "main^{commit}", "main^{tag}", "main^{}",
    "tree-tag^{}", "tree-tag^{tree}", "tree-tag^{commit}", "main~2^{tree}", "main^{tree}^{}",
    "main^{foo}", "light^{commit}", "v1.0-outer^{}~1", "v1.0-outer^{commit}^2",
    # reflogs
    "main@{0}", "main@{1}", "main@{2}", "main@{3}", "main@{10}", "main@{44}", "main@{45}", "main@{46}",
    "main@{1000}", "HEAD@{0}", "HEAD@{1}", "HEAD@{2}", "HEAD@{3}", "HEAD@{4}", "HEAD@{6}", "@{0}",
    "@{1}", "@{2}", "feature@{0}", "feature@{1}", "feature@{2}", "feature@{3}", "heads/main@{1}",
    "refs/heads/main@{2}", "topic1@{1}", "nolog@{0}", "nolog@{1}", "nosuch@{1}", "main@{1}~2",
    "main@{2}^{tree}", "v1.0@{0}", "main@{-1}",
    # checkouts
    "@{-1}", "@{-2}", "@{-3}", "@{-4}", "@{-5}", "@{-6}", "@{-1}~1", "@{-1}@{1}", "@{-3}^{tree}",
    # searching messages
    ":/fix", ":/parser", ":/^linear 1", ":/^feature", ":/Octopus", ":/no such words", ":/!-linear",
    ":/lfs", ":/linear [23]",
    # names as before
    "main", "HEAD", "@", "v1.0", "nosuchref",
]


def test_expressions_are_rev_parse(repo, objects, refs):
    differ = []
    for rev in EXPRESSIONS:
        expected, got = rev_parse(repo, rev), ours(objects, refs, rev)
        if got != expected:
            differ.append((rev, expected, got))
    assert not differ


def test_reflog_dates_are_rev_parse(repo, objects, refs):
    """Every entry's own second, a second before and after, the ends, and each date form."""
    out = repo.git.run("log", "-g", "--format=%ct %gd", "--date=unix", "main")
    stamps = sorted({int(line.split("@{")[1].rstrip("}")) for line in out.split()
                     if "@{" in line} or set())
    assert stamps, out
    tries = []
    for stamp in stamps:
        tries += [stamp - 1, stamp, stamp + 1]
    tries += [stamps[0] - 10_000, stamps[-1] + 10_000, 100_000_000]
    import datetime
    forms = []
    for stamp in tries:
        forms.append(f"main@{{{stamp}}}")
        when = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
        forms.append(f"main@{{{when:%Y-%m-%d %H:%M:%S} +0000}}")
        forms.append(f"HEAD@{{{when:%Y-%m-%dT%H:%M:%S}Z}}")
        forms.append(f"feature@{{{when:%Y-%m-%d %H:%M:%S} -0130}}")
    forms += ["main@{1.year.ago}", "main@{10.years.ago}", "main@{3 days ago}", "main@{now}", "@{1.week.ago}",
              "main@{not a date}"]
    differ = [(f, rev_parse(repo, f), ours(objects, refs, f)) for f in forms]
    assert [d for d in differ if d[1] != d[2]] == []


def test_bad_input_is_a_clear_error_never_a_hang(objects, refs):
    with time_limit(20):
        for rev in ["main~99999999999999999999", "main" + "^" * 3000, "main" + "~100000", "~1", "^{}",
                    "main^{/fix}", "main@{upstream}", "main@{u}", "main:README", "x" * 5000, ":/(",
                    ":/!x", "main^{" * 500, "@{-0}", "@{-100}", "main@{" + "1" * 4000 + "}", "",
                    "main~2~" + "9" * 11, ":/(a+)+$", ":/(.*a){20}x", "main@{99999999999.years.ago}",
                    "main@{2020-13-01 00:00:00}"]:
            with pytest.raises(odb.ObjectNotFound) as caught:
                revision.lookup(objects, refs, rev)
            assert str(caught.value)


def test_bad_revisions_say_why(objects, refs):
    with pytest.raises(BadRevision, match="upstream"):
        revision.lookup(objects, refs, "main@{upstream}")
    with pytest.raises(BadRevision, match="only 45 entries|has only"):
        revision.lookup(objects, refs, "main@{1000}")
    with pytest.raises(BadRevision, match="no parent"):
        revision.lookup(objects, refs, "main~100000")
    with pytest.raises(BadRevision, match="date"):
        revision.lookup(objects, refs, "main@{someday}")


def test_tree_of_each_expression_is_rev_parse_tree(repo, objects, refs):
    for rev in EXPRESSIONS:
        expected = rev_parse(repo, rev + "^{tree}") if not rev.startswith(":/") else \
            (rev_parse(repo, rev) and rev_parse(repo, rev_parse(repo, rev) + "^{tree}"))
        try:
            got = revision.resolve(objects, refs, rev).tree.hex()
        except odb.ObjectNotFound:
            got = None
        assert got == expected, rev


def test_dates_are_the_commits_reached(repo, objects, refs):
    found = revision.resolve(objects, refs, "main~3")
    assert found.commit.hex() == rev_parse(repo, "main~3")
    assert found.date.seconds == int(repo.git.run("log", "-1", "--format=%ct", "main~3"))


COMPONENTS = {
    "heads:main~2": "heads/main~2",
    "refs:heads:main@{1}": "refs/heads/main@{1}",
    "main@{2020-01-01 00:10:00}": "main@{2020-01-01 00:10:00}",
    "heads:main@{2020-01-01T00:10:00Z}^{tree}": "heads/main@{2020-01-01T00:10:00Z}^{tree}",
    ":fix": ":/fix",
    ":fix: the parser": ":/fix: the parser",
    "v1.0^{}": "v1.0^{}",
    "@{-1}": "@{-1}",
}


def test_path_components(repo, objects, refs):
    for component, rev in COMPONENTS.items():
        assert decode_component(component) == rev
        assert encode_component(rev) == component
        assert ours(objects, refs, decode_component(component)) == rev_parse(repo, rev), component
    for ref in refs.list():  # every ref name keeps its component
        assert decode_component(encode_component(ref.name)) == ref.name
    for name in ("refs/heads/a{b/c", "refs/heads/x}/y", "refs/tags/{v}/1"):  # braces of ref names are theirs
        component = encode_component(name)
        assert "/" not in component and decode_component(component) == name
