"""Loose objects opened so that nothing can block them: a FIFO or a device where an object was gives an
error for that object, never a hang, whether it is there at the lookup or swapped in just after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import damage
import odb
from limits import time_limit
from odb.objects.loose import LooseObjects


def _swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _swap_for_device(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


SWAPS = {"fifo": _swap_for_fifo, "device": _swap_for_device}


@pytest.fixture
def loose_repo(repo_copy):
    repo = repo_copy("loose")
    oid = repo.git.loose_ids()[0]
    return repo, oid, damage.loose_path(repo.objects_dir, oid)


@pytest.mark.parametrize("swap", SWAPS)
@pytest.mark.parametrize("method", ["read", "read_header", "iter_read", "header_and_stat"])
def test_each_loose_read_refuses_what_is_not_a_regular_file(loose_repo, swap, method):
    repo, oid, path = loose_repo
    SWAPS[swap](path)
    loose = LooseObjects(str(repo.objects_dir), odb.SHA1)
    with time_limit(5), pytest.raises(OSError, match="not a regular file"):
        getattr(loose, method)(bytes.fromhex(oid))


@pytest.mark.parametrize("swap", SWAPS)
@pytest.mark.parametrize("call", ["read", "read_header", "read_size", "open_stream", "locate"])
def test_object_swapped_after_the_lookup_is_an_error_for_it_alone(loose_repo, swap, call):
    """The lookup saw a regular file; by the open, a FIFO (or a device) stands there. The store
    answers an error for that object (not found, once it looks again), in bounded time, and
    reads the others."""
    repo, oid, path = loose_repo
    others = {o: repo.git.read(o) for o in repo.git.ids() if o != oid}  # git itself hangs on the FIFO
    with odb.open(repo.path) as store:
        loose = store._dirs[0].loose
        real = loose.contains

        def racing(raw):
            found = real(raw)
            if raw.hex() == oid and found:
                SWAPS[swap](path)
            return found

        loose.contains = racing
        with time_limit(5), pytest.raises((odb.CorruptObject, odb.ObjectNotFound)):
            result = getattr(store, call)(oid)
            if call == "open_stream":
                result.read()
        for other, want in others.items():
            assert store.read(other) == want


def test_confined_store_sees_a_bucket_git_removed_and_made_again(repo_copy, tmp_path, monkeypatch):
    """Confined (refuse_under), a store keeps bucket directories open; when git prunes a bucket
    empty and a new object makes it again, the new object is found (a miss refreshes)."""
    from odb import refused_paths

    monkeypatch.setattr(refused_paths, "_refused", frozenset())
    monkeypatch.setattr(refused_paths, "_prefixes", ())
    repo = repo_copy("loose")
    oid = repo.git.loose_ids()[0]
    bucket = repo.objects_dir / oid[:2]
    with odb.open(repo.path) as store:
        store.refuse_under(tmp_path / "elsewhere")
        assert store.read(oid) == repo.git.read(oid)
        saved = {p.name: p.read_bytes() for p in bucket.iterdir()}
        for p in bucket.iterdir():
            p.unlink()
        bucket.rmdir()
        bucket.mkdir()
        for name, data in saved.items():
            (bucket / name).write_bytes(data)
        assert store.read(oid) == repo.git.read(oid)
