"""Mapped packs stay bounded however many packs a repository has."""

import subprocess

from engine_check import read_engine  # noqa: F401 - autouse: every test here runs on both read paths
import odb
from odb.pack.backend import PackBackend
from oracle import git_env


def _repo_with_packs(tmp_path, n):
    env = git_env()
    repo = tmp_path / "many.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=env)
    ids = []
    for k in range(n):
        blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=b"object %d\n" % k,
                              capture_output=True, check=True, env=env).stdout.strip()
        subprocess.run(["git", "-C", str(repo), "pack-objects", "-q", str(repo / "objects/pack/pack")],
                       input=blob + b"\n", capture_output=True, check=True, env=env)
        ids.append((blob.decode(), b"object %d\n" % k))
    subprocess.run(["git", "-C", str(repo), "prune-packed"], check=True, env=env)
    return repo, ids


def test_mapped_packs_are_bounded_and_reads_stay_exact(tmp_path, monkeypatch):
    monkeypatch.setattr("odb.pack.backend.MAX_MAPPED_PACKS", 4)
    repo, ids = _repo_with_packs(tmp_path, 12)
    store = odb.open(repo)
    backend: PackBackend = store._dirs[0].packs
    assert len(backend.pack_names()) == 12
    for _ in range(2):  # the second pass re-maps packs the first pass let go
        for oid, data in ids:
            assert store.read(oid) == ("blob", data)
            assert len(backend._mapped) <= 4


def test_delta_result_over_the_limit_is_refused_before_allocation(monkeypatch, tmp_path):
    """A real delta whose result is above the cap is CorruptObject, not a huge allocation."""
    import odb.objects.delta_chain

    repo, _ = _repo_with_packs(tmp_path, 1)
    env = git_env()
    base = b"".join(b"line %d\n" % k for k in range(400))
    target = base + b"one more line\n"
    ids = [subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=d,
                          capture_output=True, check=True, env=env).stdout.strip() for d in (base, target)]
    subprocess.run(["git", "-C", str(repo), "pack-objects", "-q", str(repo / "objects/pack/pack")],
                   input=b"\n".join(ids) + b"\n", capture_output=True, check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "prune-packed"], check=True, env=env)
    store = odb.open(repo)
    deltas = [i.decode() for i in ids if store.locate(i.decode()).delta_base]
    assert deltas, "git stored neither object as a delta"
    monkeypatch.setattr(odb.objects.delta_chain, "MAX_DELTA_RESULT", 64)  # after locate(), which checks it too
    try:
        store.read(deltas[0])
    except odb.CorruptObject as e:
        assert "limit" in str(e)
    else:
        raise AssertionError("an over-limit delta result was served")


def test_refresh_of_one_bucket_notices_a_loose_object_there(tmp_path):
    repo, _ = _repo_with_packs(tmp_path, 1)
    store = odb.open(repo)
    env = git_env()
    oid = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=b"new\n",
                         capture_output=True, check=True, env=env).stdout.strip().decode()
    bucket = int(oid[:2], 16)
    assert store.refresh((bucket + 1) % 256) is False  # another bucket's directory did not change
    assert store.refresh(bucket) is True
    assert store.refresh(bucket) is False
    assert oid in store.iter_bucket(bucket)


def test_remembered_entry_types_are_bounded(any_repo, monkeypatch):
    """The type memo of header walks forgets everything past MAX_KINDS, whatever the mix of
    whole objects and deltas: it must not grow with the repository."""
    monkeypatch.setattr("odb.objects.delta_chain.MAX_KINDS", 16)
    objects = any_repo.git.objects()
    with odb.open(any_repo.path) as store:
        reader = store._reader
        for oid, (kind, size) in objects.items():
            assert store.read_header(oid) == (kind, size)
            packs = {p for d in store._dirs for p in d.packs._snap.packs.values()}
            live = sum(len(p.kinds) for p in packs if p.kinds_epoch is reader._kinds_epoch)
            assert live <= 16 + 1, oid


def test_the_packs_of_a_process_share_one_budget_of_mapped_windows(monkeypatch):
    """Past PROCESS_BUDGET of windows touched across all packs, every pack holding some hands its
    pages back, not only the one that crossed the line; a pack that is gone is skipped."""
    from odb.pack import residency

    class Held:
        released = 0

        def _release_all(self):
            self.released += 1

    monkeypatch.setattr(residency, "PROCESS_BUDGET", 10 << residency.WINDOW_SHIFT)
    resident = residency._ResidentPacks()
    packs = [Held() for _ in range(4)]
    gone = Held()
    resident.add(gone, 1)
    del gone
    for k in range(9):
        resident.add(packs[k % 4], 1)
    assert [p.released for p in packs] == [0, 0, 0, 0]  # 10 windows: at the budget, not past it
    resident.add(packs[0], 1)
    assert [p.released for p in packs] == [1, 1, 1, 1]
    resident.add(packs[1], 3)
    assert [p.released for p in packs] == [1, 1, 1, 1]  # counting starts again after a release
