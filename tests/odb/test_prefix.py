"""Abbreviated ids: resolve_prefix against `git rev-parse --disambiguate` (unique, ambiguous,
not found, too short), across packs, loose objects and alternates, SHA-1 and SHA-256."""

from __future__ import annotations

import random
import zlib

import pytest

import odb
from oracle import colliding_prefixes

PREFIX_REPOS = ["ambiguous", "sha256", "bare", "alt-chain", "loose"]


@pytest.fixture(params=PREFIX_REPOS)
def repo_and_store(request, fixture_repo):
    repo = fixture_repo(request.param)
    with odb.open(repo.path) as s:
        yield repo, s


def test_colliding_prefixes_are_ambiguous_with_gits_candidates(repo_and_store):
    repo, store = repo_and_store
    ids = repo.git.ids()
    checked = 0
    for length in (4, 5, 6):
        for prefix, members in sorted(colliding_prefixes(ids, length).items())[:40]:
            assert repo.git.disambiguate(prefix) == members, "the oracle disagrees with itself"
            with pytest.raises(odb.AmbiguousPrefix) as caught:
                store.resolve_prefix(prefix)
            assert sorted(caught.value.candidates) == members, prefix
            assert isinstance(caught.value, odb.OdbError)
            checked += 1
    if repo.name in ("ambiguous", "sha256"):
        assert checked >= 10, "the fixture lost its collisions"


def shortest_unique(oid: str, ids: set[str], start: int = 4) -> str:
    for n in range(start, len(oid) + 1):
        if sum(1 for other in ids if other.startswith(oid[:n])) == 1:
            return oid[:n]
    raise AssertionError("ids are unique")


def test_unique_prefixes_resolve(repo_and_store):
    repo, store = repo_and_store
    ids = repo.git.ids()
    by_prefix4 = {}
    for oid in ids:
        by_prefix4.setdefault(oid[:4], set()).add(oid)
    sample = random.Random(1).sample(ids, min(len(ids), 150))
    for oid in sample:
        short = shortest_unique(oid, by_prefix4[oid[:4]])
        # Odd and even lengths, the shortest unique one and longer ones, and the full id.
        for prefix in {short, oid[: len(short) + 1], oid[:11], oid[:12], oid}:
            assert store.resolve_prefix(prefix) == oid, prefix
    for oid in sample[:15]:
        short = shortest_unique(oid, by_prefix4[oid[:4]])
        assert repo.git.disambiguate(short) == [oid], "the oracle disagrees"


def test_absent_prefixes_are_not_found(repo_and_store):
    repo, store = repo_and_store
    ids = repo.git.ids()
    taken = {oid[:6] for oid in ids}
    absent = [p for p in (f"{n:06x}" for n in range(0, 1 << 24, 7919)) if p not in taken][:30]
    for prefix in absent:
        for length in (6, 5):
            p = prefix[:length]
            if any(oid.startswith(p) for oid in ids):
                continue
            assert repo.git.disambiguate(p) == []
            with pytest.raises(odb.ObjectNotFound):
                store.resolve_prefix(p)


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "zzzz", "12 4", "-123", "0x12"])
def test_short_or_malformed_prefixes_are_refused(fixture_repo, prefix):
    with odb.open(fixture_repo("ambiguous").path) as s:
        with pytest.raises(odb.ObjectNotFound):
            s.resolve_prefix(prefix)


def test_too_long_prefix_is_refused(fixture_repo):
    repo = fixture_repo("loose")
    oid = repo.git.ids()[0]
    with odb.open(repo.path) as s:
        with pytest.raises(odb.ObjectNotFound):
            s.resolve_prefix(oid + "0")


def test_three_digits_never_resolve_even_when_unique(fixture_repo):
    """git's minimum abbreviation is 4; a 3-digit name must not open anything."""
    repo = fixture_repo("loose")
    ids = repo.git.ids()
    unique3 = [oid for oid in ids if sum(o.startswith(oid[:3]) for o in ids) == 1]
    assert unique3
    with odb.open(repo.path) as s:
        with pytest.raises(odb.ObjectNotFound):
            s.resolve_prefix(unique3[0][:3])


def test_ambiguity_across_pack_and_loose(fixture_repo):
    """The fixture packs every other blob, so some collisions pair a packed and a loose object."""
    repo = fixture_repo("ambiguous")
    loose = set(repo.git.loose_ids())
    mixed = {p: m for p, m in colliding_prefixes(repo.git.ids(), 4).items()
             if any(o in loose for o in m) and any(o not in loose for o in m)}
    assert mixed, "no prefix straddles the pack and the loose objects"
    with odb.open(repo.path) as s:
        for prefix, members in mixed.items():
            with pytest.raises(odb.AmbiguousPrefix) as caught:
                s.resolve_prefix(prefix)
            assert sorted(caught.value.candidates) == members


def test_prefixes_reach_into_alternates(fixture_repo):
    chain = fixture_repo("alt-chain")
    base_ids = fixture_repo("alt-base").git.ids()
    own = set(chain.git.loose_ids())
    with odb.open(chain.path) as s:
        for oid in base_ids[:30]:
            assert oid not in own
            assert s.resolve_prefix(oid[:16]) == oid


def test_an_object_in_two_sources_is_not_ambiguous(repo_copy):
    """A packed object written loose again (git does this) is one object, listed once."""
    repo = repo_copy("midx")
    packed = sorted(set(repo.git.ids()) - set(repo.git.loose_ids()))
    oid = next(o for o in packed if repo.git.objects()[o][0] == "blob")
    kind, data = repo.git.read(oid)
    path = repo.objects_dir / oid[:2] / oid[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zlib.compress(b"%s %d\0" % (kind.encode(), len(data)) + data))
    with odb.open(repo.path) as s:
        assert s.resolve_prefix(oid[:10]) == oid
        assert s.iter_bucket(int(oid[:2], 16)).count(oid) == 1
        assert list(s) == repo.git.ids()


def test_uppercase_prefix_matches_git(fixture_repo):
    """Whatever git decides for upper-case hex, odb decides the same."""
    repo = fixture_repo("loose")
    oid = repo.git.ids()[0]
    upper = oid[:10].upper()
    git_says = repo.git.disambiguate(upper)
    with odb.open(repo.path) as s:
        if git_says == [oid]:
            assert s.resolve_prefix(upper) == oid
        else:
            with pytest.raises(odb.ObjectNotFound):
                s.resolve_prefix(upper)
