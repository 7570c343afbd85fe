"""Store.pack_order: the order that reads many objects fastest is their packs' own (odb/pack_order.py).
git says where each entry is (`git show-index`); the order must read each pack front to back."""

from __future__ import annotations

import subprocess

import odb
from oracle import git_env


def git_offsets(git_dir, object_format: str) -> dict[tuple[str, str], int]:
    """(pack file name, hex id) -> the entry's offset, as git reads each .idx."""
    out = {}
    for idx in sorted((git_dir / "objects" / "pack").glob("*.idx")):
        shown = subprocess.run(["git", "show-index", f"--object-format={object_format}"], stdin=idx.open("rb"),
                               capture_output=True, text=True, check=True, env=git_env()).stdout
        for line in shown.splitlines():
            offset, oid = line.split()[:2]
            out[(idx.name[: -len(".idx")] + ".pack", oid)] = int(offset)
    return out


def test_pack_order_reads_each_pack_front_to_back_then_the_rest(any_repo):
    with odb.open(any_repo.path) as store:
        n = store.format.raw_len
        ids = b"".join(store.bucket_ids(b) for b in range(256))
        count = len(ids) // n
        order = store.pack_order(ids)
        assert sorted(order) == list(range(count))
        offsets = git_offsets(any_repo.git_dir, store.format.name)
        own = store._dirs[0]
        seen = []  # per id in order: (pack name, git's offset), or None when no pack of the repository's own has it
        for k in order:
            loc = store._find(ids[k * n : (k + 1) * n])
            packed = loc is not None and loc.pack is not None and loc.source is own
            seen.append((loc.pack.name, offsets[(loc.pack.name, loc.raw.hex())]) if packed else None)
    packed = [s for s in seen if s is not None]
    assert seen[: len(packed)] == packed, "an object no pack holds came before a packed one"
    runs = [name for k, (name, _) in enumerate(packed) if k == 0 or packed[k - 1][0] != name]
    assert len(runs) == len(set(runs)), "a pack's objects are not together"
    assert all(a[1] < b[1] for a, b in zip(packed, packed[1:]) if a[0] == b[0]), "offsets go back within a pack"
    unpacked = [k for k, s in zip(order, seen) if s is None]
    assert unpacked == sorted(unpacked), "the others keep the order they were given in"


def test_pack_order_of_nothing_and_of_ids_no_pack_has(fixture_repo):
    with odb.open(fixture_repo("midx").path) as store:
        n = store.format.raw_len
        assert list(store.pack_order(b"")) == []
        missing = bytes(n) + b"\xff" * n
        assert list(store.pack_order(missing)) == [0, 1]
