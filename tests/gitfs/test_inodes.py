"""Inode numbering: derived from ids with no table, collisions moved, dynamic nodes counted."""

from __future__ import annotations

import pytest

from gitfs.view.inodes import (
    DYNAMIC,
    FIRST_OBJECT_INODE,
    ROOT_INODE,
    DynamicInodes,
    MovedInodes,
    bucket_inode,
    bucket_of_inode,
    inode_prefix,
    natural_inode,
    shares_inode,
)


def test_fixed_inodes_do_not_overlap():
    buckets = {bucket_inode(b) for b in range(256)} | {bucket_inode(b, alias=True) for b in range(256)}
    assert len(buckets) == 512 and ROOT_INODE not in buckets
    assert max(buckets) < FIRST_OBJECT_INODE
    assert all(bucket_of_inode(bucket_inode(b)) == b == bucket_of_inode(bucket_inode(b, True)) for b in range(256))
    assert bucket_of_inode(ROOT_INODE) is None and bucket_of_inode(FIRST_OBJECT_INODE) is None


def test_natural_inode_leads_back_to_its_id():
    oid = bytes.fromhex("5a0bde0b1c" + "7" * 30)
    inode = natural_inode(oid)
    assert inode < 1 << 63
    assert inode >> 55 == oid[0]  # the top byte names the bucket
    assert oid.startswith(inode_prefix(inode)[:7])
    assert shares_inode(oid, inode)
    assert not shares_inode(bytes.fromhex("5a0bde0b1c" + "8" * 30), inode)


def test_moved_inodes_retire_the_natural_one():
    moved = MovedInodes()
    a = bytes.fromhex("ab" * 7 + "cd" + "00" * 12)
    b = bytes.fromhex("ab" * 7 + "cd" + "11" * 12)
    natural = natural_inode(a)
    assert natural == natural_inode(b)
    assert moved.inode_for(a) == natural and not moved
    ia, ib = moved.move(a), moved.move(b)
    assert ia != ib and ia < FIRST_OBJECT_INODE and ib < FIRST_OBJECT_INODE
    assert moved.move(a) == ia and moved.inode_for(a) == ia  # stable
    assert moved.oid_of(ia) == a and moved.oid_of(ib) == b
    assert moved.retired(natural)
    assert moved.ids_in_bucket(0xAB) == [a, b] and moved.ids_in_bucket(0xAC) == []


def test_dynamic_inodes_live_while_the_kernel_holds_them():
    table = DynamicInodes()
    node = ("tree", b"\x01" * 20)
    inode = table.inode_for(node)
    assert inode & DYNAMIC
    assert table.inode_for(node) == inode and table.node_of(inode) == node
    table.remember(inode)
    table.remember(inode)
    table.forget(inode, 1)
    assert table.node_of(inode) == node
    table.forget(inode, 1)
    assert table.node_of(inode) is None and len(table) == 0
    # A node handed out but never sent to the kernel is dropped without a forget.
    other = table.inode_for(("tree", b"\x02" * 20))
    table.drop_unheld(other)
    assert len(table) == 0
    # A fresh node gets a fresh inode: the kernel may still be forgetting the old one.
    assert table.inode_for(node) != inode


@pytest.mark.parametrize("count", [1, 3])
def test_forget_of_unknown_inodes_is_harmless(count):
    table = DynamicInodes()
    table.forget(DYNAMIC | 12345, count)
    assert len(table) == 0


def test_an_id_listed_twice_is_not_taken_for_a_collision():
    """A damaged index may repeat an id (odb takes an index's order on trust, as git does): the
    listing keeps the id's natural inode, retires nothing; two ids that really share their top
    63 bits are both moved."""
    from gitfs.view.listings import BucketListing

    a = bytes.fromhex("ab" + "11" * 19)
    twin_pair = bytes.fromhex("ab" + "22" * 7 + "00" + "33" * 11), bytes.fromhex("ab" + "22" * 7 + "01" + "44" * 11)
    moved = MovedInodes()
    listing = BucketListing(0xAB, a + a + b"".join(twin_pair), 20, 0, moved)
    assert list(listing.inodes[:2]) == [natural_inode(a)] * 2 and not moved.retired(natural_inode(a))
    assert all(listing.inodes[k] < FIRST_OBJECT_INODE for k in (2, 3)) and moved.retired(natural_inode(twin_pair[0]))


def test_a_listing_calls_back_once_every_size_is_in():
    """Listing.when_filled: at once for a listing whose sizes are all known, else from the fill
    of the last batch, whichever thread it runs in, and once (subtrees are read ahead only after
    their directory's own listing is complete: gitfs/namespaces/subtrees_ahead.py)."""
    import threading
    from array import array

    from gitfs.view.listings import Listing

    ids = b"".join(bytes([k]) * 20 for k in range(3))
    listing = Listing(ids, 20, 0, array("Q", [1, 2, 3]))
    called = []
    listing.when_filled(lambda: called.append(threading.current_thread().name))
    listing.fill(1, array("q", [5, 6]), {}, array("H", [0, 0]))  # out of order: entry 0 still unknown
    assert called == []
    filler = threading.Thread(target=listing.fill, args=(0, array("q", [4]), {}, array("H", [0])), name="filler")
    filler.start()
    filler.join()
    assert called == ["filler"]
    listing.fill(0, array("q", [4]), {}, array("H", [0]))  # again: nothing more
    listing.when_filled(lambda: called.append("now"))
    assert called == ["filler", "now"] and list(listing.sizes) == [4, 5, 6]
