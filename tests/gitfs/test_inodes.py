"""Inode numbers: stable from the id, reserved ranges kept, collisions given a spare inode."""

from __future__ import annotations

from gitfs.inodes import FIRST_OBJECT_INODE, ROOT_INODE, InodeTable, bucket_inode, bucket_of_inode, natural_inode


def test_reserved_inodes():
    assert ROOT_INODE == 1
    assert [bucket_of_inode(bucket_inode(b)) for b in range(256)] == list(range(256))
    assert bucket_of_inode(ROOT_INODE) is None
    assert bucket_of_inode(bucket_inode(255) + 1) is None
    assert bucket_inode(255) < FIRST_OBJECT_INODE


def test_natural_inode_is_the_top_63_bits():
    oid = bytes.fromhex("5a0bde0b1c" + "00" * 15)
    assert natural_inode(oid) == int("5a0bde0b1c000000", 16) >> 1
    assert natural_inode(b"\xff" * 20) == (1 << 63) - 1


def test_collision_gets_a_spare_inode_and_keeps_it():
    table = InodeTable()
    a = bytes.fromhex("77" * 8 + "00" * 12)
    b = bytes.fromhex("77" * 8 + "01" * 12)  # same top 64 bits
    ia = table.inode_for(a)
    table.remember(ia, a)
    ib = table.inode_for(b)
    assert ia == natural_inode(a) and ib != ia
    assert bucket_inode(255) < ib < FIRST_OBJECT_INODE
    table.remember(ib, b)
    assert table.oid_of(ia) == a and table.oid_of(ib) == b
    assert table.inode_for(b) == ib  # stable for the life of the mount
    table.forget(ia, 1)
    assert table.oid_of(ia) is None and table.oid_of(ib) == b


def test_ids_in_the_reserved_range_are_moved():
    table = InodeTable()
    low = bytes(20)
    inode = table.inode_for(low)
    assert bucket_inode(255) < inode < FIRST_OBJECT_INODE


def test_lookup_counts():
    table = InodeTable()
    oid = bytes.fromhex("ab" * 20)
    inode = table.inode_for(oid)
    for _ in range(3):
        table.remember(inode, oid)
    table.forget(inode, 2)
    assert table.oid_of(inode) == oid
    table.forget(inode, 1)
    assert table.oid_of(inode) is None and len(table) == 0
    table.forget(inode, 1)  # an unknown inode is ignored
