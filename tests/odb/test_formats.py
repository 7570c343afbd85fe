"""Each storage layout the fixtures hold, seen through odb: which source answers, delta chains,
alternates, SHA-256, streaming of big blobs, the empty repository."""

from __future__ import annotations

import os
import tracemalloc

import pytest

import odb


def sources(store, ids) -> dict[str, int]:
    counts: dict[str, int] = {}
    for oid in ids:
        source = store.locate(oid).source
        counts[source] = counts.get(source, 0) + 1
    return counts


@pytest.mark.parametrize("name", ["midx", "bare", "sha256"])
def test_every_pack_and_the_loose_objects_answer(fixture_repo, name):
    """With a midx, packs outside it and loose objects, every source serves some object."""
    repo = fixture_repo(name)
    with odb.open(repo.path) as s:
        seen = sources(s, repo.git.ids())
    want = {p.name for p in repo.git.packs()} | {"loose"}
    assert set(seen) == want


@pytest.mark.parametrize("name,min_deltas", [("ofs-delta", 10), ("ref-delta", 10), ("deep-delta", 50)])
def test_delta_bases_exist_and_read(fixture_repo, name, min_deltas):
    repo = fixture_repo(name)
    objects = repo.git.objects()
    with odb.open(repo.path) as s:
        deltas = {oid: s.locate(oid).delta_base for oid in objects}
        deltas = {oid: base for oid, base in deltas.items() if base is not None}
        assert len(deltas) >= min_deltas
        for oid, base in deltas.items():
            assert base in objects and base != oid
            assert s.locate(base).kind == objects[oid][0]


def test_deep_chain_depth(fixture_repo):
    """Following delta_base from the deepest object walks a chain as deep as git reports."""
    repo = fixture_repo("deep-delta")
    out = repo.git.run("verify-pack", "-v", str(repo.git.packs()[0].with_suffix(".idx")))
    git_depth = {line.split()[0]: int(line.split()[5]) for line in out.splitlines()
                 if len(line.split()) == 7}
    deepest = max(git_depth, key=git_depth.get)
    with odb.open(repo.path) as s:
        depth, oid = 0, deepest
        while (base := s.locate(oid).delta_base) is not None:
            depth, oid = depth + 1, base
            assert depth <= 1000
        assert depth == git_depth[deepest] >= 40
        assert s.read(deepest) == repo.git.read(deepest)


def test_alternate_sources_name_the_right_directory(fixture_repo):
    base = fixture_repo("alt-base")
    base_ids = set(base.git.ids())
    for name in ("alt-relative", "alt-absolute", "alt-chain"):
        repo = fixture_repo(name)
        own = set(repo.git.loose_ids()) | {o for o in repo.git.ids() if o not in base_ids}
        with odb.open(repo.path) as s:
            for oid in sorted(base_ids)[:40]:
                source = s.locate(oid).source
                assert source.startswith("alternate:"), (name, source)
                path, rest = source[len("alternate:"):].rsplit(":", 1)
                assert os.path.samefile(path, base.objects_dir), (name, source)
                assert rest == "loose" or rest.startswith("pack-")
            for oid in sorted(own)[:40]:
                if oid in base_ids:
                    continue
                source = s.locate(oid).source
                if name == "alt-chain" and source.startswith("alternate:"):
                    # Objects of the middle repository, one alternate away.
                    path = source[len("alternate:"):].rsplit(":", 1)[0]
                    assert os.path.samefile(path, fixture_repo("alt-relative").objects_dir)
                else:
                    assert not source.startswith("alternate:"), (name, oid, source)


def test_sha256_reads_with_raw_and_hex_ids(fixture_repo):
    repo = fixture_repo("sha256")
    with odb.open(repo.path) as s:
        assert s.format is odb.SHA256
        for oid, kind, data in repo.git.contents(repo.git.ids()[:200]):
            assert len(oid) == 64
            assert s.read(bytes.fromhex(oid)) == (kind, data)
            assert s.read(oid) == (kind, data)
        # A SHA-1-length id cannot name anything here.
        with pytest.raises(odb.ObjectNotFound):
            s.read(repo.git.ids()[0][:40])


def test_empty_repository(fixture_repo):
    with odb.open(fixture_repo("empty").path) as s:
        assert list(s) == []
        assert all(s.iter_bucket(b) == [] for b in range(256))
        with pytest.raises(odb.ObjectNotFound):
            s.resolve_prefix("abcd")
        with pytest.raises(odb.ObjectNotFound):
            s.read("0" * 40)
        assert s.refresh() is False


def big_blobs(repo) -> list[str]:
    return sorted(o for o, (k, size) in repo.git.objects().items() if k == "blob" and size > 2**20)


def test_big_blobs_stream_in_small_reads(fixture_repo):
    repo = fixture_repo("bigblob")
    with odb.open(repo.path) as s:
        for oid in big_blobs(repo):
            _, want = repo.git.read(oid)
            stream = s.open_stream(oid)
            try:
                assert (stream.kind, stream.size) == ("blob", len(want))
                got = bytearray()
                while chunk := stream.read(4096):
                    assert len(chunk) <= 4096
                    got += chunk
                assert got == want, oid
            finally:
                stream.close()


STREAM_PEAK_LIMIT = 4 << 20


def test_a_big_whole_blob_is_not_inflated_at_once(fixture_repo):
    """Streaming a blob stored whole (packed or loose) holds a bounded window of it, not all of it:
    the fixture's text blobs are about 11 MB, the Python allocation peak must stay under 4 MiB."""
    repo = fixture_repo("bigblob")
    with odb.open(repo.path) as s:
        whole = [o for o in big_blobs(repo)
                 if s.locate(o).delta_base is None and s.read_header(o)[1] > 2 * STREAM_PEAK_LIMIT]
        assert len(whole) >= 2 and {s.locate(o).source == "loose" for o in whole} == {True, False}
        for oid in whole:
            size = s.read_header(oid)[1]
            tracemalloc.start()
            try:
                stream = s.open_stream(oid)
                total = 0
                while chunk := stream.read(65536):
                    total += len(chunk)
                stream.close()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert total == size
            assert peak < STREAM_PEAK_LIMIT, f"{oid}: peak {peak} bytes while streaming {size}"


def test_stream_close_early_is_harmless(fixture_repo):
    repo = fixture_repo("bigblob")
    with odb.open(repo.path) as s:
        for oid in big_blobs(repo):
            stream = s.open_stream(oid)
            assert len(stream.read(100)) == 100
            stream.close()
            assert s.read(oid) == repo.git.read(oid)
