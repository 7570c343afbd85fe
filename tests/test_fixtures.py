"""The fixture repositories really have the layouts the odb tests rely on (checked with git alone)."""

from __future__ import annotations

import collections
import subprocess

import pytest

from oracle import Git, colliding_prefixes, git_env

OFS_DELTA, REF_DELTA = 6, 7


def pack_entry_types(idx_path) -> collections.Counter:
    """Counts the entry types of a pack, reading each entry's first byte at git's own offsets."""
    out = subprocess.run(["git", "show-index"], stdin=open(idx_path, "rb"), capture_output=True,
                         check=True, env=git_env()).stdout.decode()
    pack = idx_path.with_suffix(".pack").read_bytes()
    return collections.Counter((pack[int(line.split()[0])] >> 4) & 7 for line in out.splitlines())


def idx_version(idx_path) -> int:
    head = idx_path.read_bytes()[:8]
    return int.from_bytes(head[4:8], "big") if head[:4] == b"\xfftOc" else 1


def large_offsets(idx_path) -> int:
    """How many 64-bit offsets a v2 .idx carries, from its size."""
    data = idx_path.read_bytes()
    n = int.from_bytes(data[8 + 1020:8 + 1024], "big")
    return (len(data) - (8 + 1024 + n * 28 + 40)) // 8


def only_idx(repo):
    (idx,) = sorted((repo.objects_dir / "pack").glob("*.idx"))
    return idx


def test_every_fixture_is_a_sound_repository(any_repo):
    out = subprocess.run(["git", f"--git-dir={any_repo.git_dir}", "fsck", "--no-dangling", "--strict"],
                         capture_output=True, env=git_env())
    assert out.returncode == 0, out.stderr.decode()


def test_empty_has_no_objects(fixture_repo):
    assert fixture_repo("empty").git.objects() == {}


def test_loose_has_no_packs_and_every_kind(fixture_repo):
    repo = fixture_repo("loose")
    assert repo.git.packs() == []
    kinds = {kind for kind, _ in repo.git.objects().values()}
    assert kinds == {"commit", "tree", "blob", "tag"}
    assert len(repo.git.loose_ids()) == len(repo.git.objects())


@pytest.mark.parametrize("name,version,large", [("idx-v1", 1, 0), ("idx-v2", 2, 0), ("ofs-delta", 2, 0)])
def test_index_versions(fixture_repo, name, version, large):
    idx = only_idx(fixture_repo(name))
    assert idx_version(idx) == version
    if version == 2:
        assert large_offsets(idx) == large


def test_large_offset_table_is_used_but_not_for_every_entry(fixture_repo):
    idx = only_idx(fixture_repo("idx-v2-large"))
    n = int.from_bytes(idx.read_bytes()[8 + 1020:8 + 1024], "big")
    assert 0 < large_offsets(idx) < n


def test_ofs_and_ref_delta_packs(fixture_repo):
    ofs = pack_entry_types(only_idx(fixture_repo("ofs-delta")))
    ref = pack_entry_types(only_idx(fixture_repo("ref-delta")))
    assert ofs[OFS_DELTA] > 10 and ofs[REF_DELTA] == 0
    assert ref[REF_DELTA] > 10 and ref[OFS_DELTA] == 0


def test_deep_delta_chain(fixture_repo):
    repo = fixture_repo("deep-delta")
    out = repo.git.run("verify-pack", "-v", str(only_idx(repo)))
    depths = [int(line.split("=")[1].split(":")[0]) for line in out.splitlines() if "chain length" in line]
    assert max(depths) >= 40


@pytest.mark.parametrize("name", ["midx", "bare", "sha256"])
def test_midx_with_packs_outside_and_loose(fixture_repo, name):
    repo = fixture_repo(name)
    midx = repo.objects_dir / "pack" / "multi-pack-index"
    assert midx.read_bytes()[:4] == b"MIDX"
    names = midx.read_bytes()
    packs = repo.git.packs()
    listed = [p for p in packs if p.with_suffix(".idx").name.encode() in names]
    assert len(listed) >= 2 and len(packs) > len(listed), (listed, packs)
    assert repo.git.loose_ids(), "no loose objects"
    repo.git.run("multi-pack-index", "verify")


def test_alternates(fixture_repo):
    for name, absolute in (("alt-relative", False), ("alt-absolute", True), ("alt-chain", False)):
        repo = fixture_repo(name)
        line = (repo.objects_dir / "info" / "alternates").read_text().strip()
        assert line.startswith("/") == absolute, line
        own = set(repo.git.loose_ids())
        assert own and own < set(repo.git.objects()), name
    chain = set(fixture_repo("alt-chain").git.objects())
    assert set(fixture_repo("alt-base").git.objects()) < set(fixture_repo("alt-relative").git.objects()) < chain


def test_sha256(fixture_repo):
    repo = fixture_repo("sha256")
    assert repo.git.object_format == "sha256"
    assert all(len(oid) == 64 for oid in repo.git.objects())


@pytest.mark.parametrize("name", ["ambiguous", "sha256"])
def test_prefixes_collide(fixture_repo, name):
    ids = fixture_repo(name).git.ids()
    assert len(colliding_prefixes(ids, 4)) >= 5
    if name == "ambiguous":
        assert colliding_prefixes(ids, 5)


def test_big_blobs(fixture_repo):
    repo = fixture_repo("bigblob")
    big = [oid for oid, (kind, size) in repo.git.objects().items() if kind == "blob" and size > 2**20]
    assert len(big) >= 4
    assert any(oid in repo.git.loose_ids() for oid in big)
    assert pack_entry_types(only_idx(repo))[OFS_DELTA] >= 1


def test_builds_are_deterministic(tmp_path, fixtures_root):
    """Ids and pack names match a second, independent build of the same fixture."""
    import make_fixtures

    make_fixtures.make_midx(tmp_path / "midx")
    again = Git(tmp_path / "midx" / ".git")
    first = Git(fixtures_root / "midx" / ".git")
    assert again.ids() == first.ids()
    assert [p.name for p in again.packs()] == [p.name for p in first.packs()]
