"""Mapped packs stay bounded however many packs a repository has."""

import subprocess

import odb
from odb.pack_backend import PackBackend


def _repo_with_packs(tmp_path, n):
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.com",
           "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
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
    monkeypatch.setattr("odb.pack_backend.MAX_MAPPED_PACKS", 4)
    repo, ids = _repo_with_packs(tmp_path, 12)
    store = odb.open(repo)
    backend: PackBackend = store._dirs[0].packs
    assert len(backend.pack_names()) == 12
    for _ in range(2):  # the second pass re-maps packs the first pass let go
        for oid, data in ids:
            assert store.read(oid) == ("blob", data)
            assert len(backend._mapped) <= 4
