"""The committed repositories of fixtures/formats/ (written by the newest git) and the newest git's
answers for them, which the tests compare odb with: CI has only git 2.39, which cannot read some
of these formats (it dies on a multi-pack-index v2).

Import the pytest fixtures by name (`from format_fixtures import format_copy`); the rest are
plain functions. The committed repositories are shared: tests that damage one use format_copy.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

import damage
import odb
from size_check import check_sizes

ROOT = Path(__file__).resolve().parent.parent
FORMATS_DIR = ROOT / "fixtures" / "formats"
FORMAT_NAMES = sorted(p.name for p in FORMATS_DIR.iterdir() if (p / "repo.git").is_dir())
NULL_IDS = {"0" * 40, "0" * 64}


@dataclass(frozen=True)
class Answers:
    """What the newest git said about one repository (see scripts/make_format_fixtures.py)."""

    objects: dict[str, tuple[str, int]]  # id -> (type, size)
    deltas: dict[str, str | None]  # id -> delta base id, None when stored whole
    contents: dict[str, str]  # id -> sha256 of its content
    disambiguate: dict[str, list[str]]  # prefix -> every id it abbreviates
    refs: list[tuple[str, str, str]]  # (id, type, name)

    @classmethod
    def load(cls, name: str) -> Answers:
        base = FORMATS_DIR / name
        lines = lambda f: (base / f).read_text().splitlines()  # noqa: E731
        objects = {oid: (kind, int(size)) for oid, kind, size in (line.split() for line in lines("objects.txt"))}
        deltas = {oid: (None if b in NULL_IDS else b) for oid, b in (line.split() for line in lines("deltas.txt"))}
        contents = dict(line.split() for line in lines("contents.txt"))
        disambiguate = {f[0]: f[1:] for f in (line.split() for line in lines("disambiguate.txt"))}
        refs = []
        for line in lines("refs.txt"):
            head, ref = line.split("\t")
            oid, kind = head.split()
            refs.append((oid, kind, ref))
        return cls(objects, deltas, contents, disambiguate, refs)


def repo_path(name: str) -> Path:
    return FORMATS_DIR / name / "repo.git"


@pytest.fixture
def format_copy(tmp_path):
    """format_copy("midx-chain") -> a private copy of that repository (its objects dir is
    copy / "objects"), for tests that damage or change it."""

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(repo_path(name), dest, symlinks=True)
        return dest

    return copy


def check_against_answers(store: odb.Store, answers: Answers, *, gone: frozenset = frozenset(),
                          deltas: bool = True, single_copy: set[str] | None = None) -> None:
    """Every call of the public API agrees with git: listing, headers, sizes, contents,
    abbreviations, refs' objects, and (for objects stored once) delta bases."""
    want = {oid: v for oid, v in answers.objects.items() if oid not in gone}
    assert set(store) == set(want)
    by_bucket: dict[int, list[str]] = {}
    for oid in sorted(want):
        by_bucket.setdefault(int(oid[:2], 16), []).append(oid)
    assert store.nonempty_buckets() == sorted(by_bucket)
    for bucket, ids in by_bucket.items():
        assert store.list_bucket(bucket) == ids
    assert check_sizes(store, list(want)) == [size for _, size in want.values()]
    for oid, (kind, size) in want.items():
        assert store.read_header(oid) == (kind, size), oid
        assert store.read_size(oid) == size, oid
        got_kind, data = store.read(oid)
        assert got_kind == kind and hashlib.sha256(data).hexdigest() == answers.contents[oid], oid
    for prefix, candidates in answers.disambiguate.items():
        candidates = [c for c in candidates if c not in gone]
        if not candidates:
            with pytest.raises(odb.ObjectNotFound):
                store.resolve_prefix(prefix)
        elif len(candidates) == 1:
            assert store.resolve_prefix(prefix) == candidates[0], prefix
        else:
            with pytest.raises(odb.AmbiguousPrefix) as e:
                store.resolve_prefix(prefix)
            assert e.value.candidates == candidates
    for oid, kind, _ in answers.refs:
        if oid not in gone:
            assert store.read_header(oid)[0] == kind
    if deltas:
        for oid in want:
            if single_copy is None or oid in single_copy:
                assert store.locate(oid).delta_base == answers.deltas[oid], oid


def stored_once(repo: Path) -> set[str]:
    """Ids that exactly one pack or loose file of the repository holds: for those, odb and git
    read the same copy, so their delta bases must agree."""
    seen: dict[str, int] = {}
    for idx in (repo / "objects" / "pack").glob("*.idx"):
        for oid in damage.pack_entries(idx, raw_len=_raw_len(idx)):
            seen[oid] = seen.get(oid, 0) + 1
    for path in (repo / "objects").glob("[0-9a-f][0-9a-f]/*"):
        oid = path.parent.name + path.name
        seen[oid] = seen.get(oid, 0) + 1
    return {oid for oid, n in seen.items() if n == 1}


def _raw_len(idx: Path) -> int:
    """20 or 32, from the index's own size (version 2: 8 + 1024 + n * (H + 8) + large offsets + 2H)."""
    data = idx.read_bytes()
    (n,) = struct.unpack_from(">I", data, 8 + 1020)
    for h in (20, 32):
        extra = len(data) - (8 + 1024 + n * (h + 8) + 2 * h)
        if extra >= 0 and extra % 8 == 0:
            return h
    raise ValueError(f"{idx}: neither a SHA-1 nor a SHA-256 index")


# ---- multi-pack-index chains ----------------------------------------------------------------------


def chain_dir(repo: Path) -> Path:
    return repo / "objects" / "pack" / "multi-pack-index.d"


def chain_file(repo: Path) -> Path:
    return chain_dir(repo) / "multi-pack-index-chain"


def chain_names(repo: Path) -> list[str]:
    return chain_file(repo).read_text().split()


def layer_path(repo: Path, name: str) -> Path:
    return chain_dir(repo) / f"multi-pack-index-{name}.midx"


def write_chain(repo: Path, names: list[str]) -> None:
    damage.replace(chain_file(repo), "".join(f"{n}\n" for n in names).encode())


def rewrite_layer(repo: Path, k: int, edit) -> str:
    """Applies edit (a function of a damage.Midx) to layer k (base first), writes it back with
    a correct trailer under its new name, and points the chain at it; returns the new name.
    The layer is then well-formed as a file: only what edit changed is wrong."""
    names = chain_names(repo)
    raw_len = len(names[k]) // 2
    old = layer_path(repo, names[k])
    m = damage.Midx.read(old, raw_len)
    edit(m)
    data = m.encode()
    new_name = data[-raw_len:].hex()
    old.unlink()
    damage.replace(layer_path(repo, new_name), data)
    names[k] = new_name
    write_chain(repo, names)
    return new_name
