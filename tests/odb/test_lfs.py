"""odb.lfs: pointers as git-lfs's spec reads them, objects used only when size and sha256 agree."""

from __future__ import annotations

import hashlib

import pytest

from odb.lfs import LfsObjects, LfsPointer, parse_pointer

OID = hashlib.sha256(b"hello\n").hexdigest()
GOOD = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 6\n".encode()


def test_a_pointer_as_the_spec_writes_it():
    assert parse_pointer(GOOD) == LfsPointer(OID, 6)
    with_ext = (f"version https://git-lfs.github.com/spec/v1\next-0-foo sha256:{OID}\noid sha256:{OID}\n"
                f"size 6\n").encode()
    assert parse_pointer(with_ext) == LfsPointer(OID, 6)
    legacy = GOOD.replace(b"git-lfs.github.com", b"hawser.github.com")
    assert parse_pointer(legacy) == LfsPointer(OID, 6)


@pytest.mark.parametrize("data", [
    b"", GOOD[:-1], GOOD.replace(b"size 6", b"size 06"), GOOD.replace(b"size 6", b"size -6"),
    GOOD.replace(b"size 6", b"size six"), GOOD.replace(b"sha256:", b"sha1:"), GOOD.upper(),
    GOOD.replace(OID.encode(), OID[:-1].encode()), GOOD.replace(b"spec/v1", b"spec/v2"),
    b"oid sha256:" + OID.encode() + b"\nversion https://git-lfs.github.com/spec/v1\nsize 6\n",
    GOOD.replace(b"size 6\n", b"size 6\naaa x\n"),  # keys out of order
    GOOD + b"size 7\n", GOOD.replace(b"\n", b"\r\n"), GOOD + b"x" * 1024,
])
def test_anything_else_is_no_pointer(data):
    assert parse_pointer(data) is None


def test_objects_are_checked(tmp_path):
    objects = LfsObjects(tmp_path)
    pointer = LfsPointer(OID, 6)
    assert "not in the repository" in objects.find(pointer).problem
    path = tmp_path / "lfs" / "objects" / OID[:2] / OID[2:4] / OID
    path.parent.mkdir(parents=True)
    path.write_bytes(b"hello")
    assert "5 bytes, the pointer says 6" in objects.find(pointer).problem
    path.write_bytes(b"hello\n")
    assert objects.find(pointer).path == str(path)
    assert objects.read(pointer, 1, 3) == b"ell"
    other = LfsObjects(tmp_path)
    path.write_bytes(b"HELLO\n")  # same size, other bytes
    with pytest.raises(OSError, match="sha256 differs"):
        other.read(pointer, 0, 6)
