"""Ids and their vocabulary (odb/oid.py, odb/objects/kinds.py): Prefix parses an abbreviation once, Kind
names the type codes of pack entries."""

from __future__ import annotations

import pytest

import odb
from odb.objects.kinds import KINDS, Kind
from odb.oid import Prefix


def test_prefix_keeps_whole_bytes_and_checks_an_odd_digit_in_hex():
    p = Prefix.from_hex("5A0bD")
    assert (p.hex, p.raw, p.first_byte) == ("5a0bd", bytes.fromhex("5a0b"), 0x5A)
    assert p.matches(bytes.fromhex("5a0bd0" + "00" * 17))
    assert p.matches(bytes.fromhex("5a0bdf" + "00" * 17))
    assert not p.matches(bytes.fromhex("5a0be0" + "00" * 17))  # the half byte differs
    assert not p.matches(bytes.fromhex("5a0cd0" + "00" * 17))
    even = Prefix.from_hex("5a0b")
    assert even.matches(bytes.fromhex("5a0be0" + "00" * 17))


def test_prefix_needs_two_digits():
    with pytest.raises(ValueError):
        Prefix.from_hex("5")


def test_kind_codes_are_gits():
    assert [int(k) for k in Kind] == [1, 2, 3, 4, 6, 7]
    assert KINDS == {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
    assert [k.is_delta for k in Kind] == [False] * 4 + [True] * 2


def test_iter_bucket_is_the_old_name_of_list_bucket():
    assert odb.Store.iter_bucket is odb.Store.list_bucket
