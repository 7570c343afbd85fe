"""odb.lru: the one bounded cache, by count, by bytes or both, and the locked ByteLRU."""

import threading

from odb.lru import LRU, ByteLRU


def test_the_least_recently_used_goes_first():
    lru = LRU(max_items=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    assert lru.put("c", 3) == [("b", 2)]
    assert lru.keys() and list(lru.keys()) == ["a", "c"]
    assert "b" not in lru and len(lru) == 2


def test_peek_does_not_count_as_a_use():
    lru = LRU(max_items=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1
    assert lru.put("c", 3) == [("a", 1)]
    assert lru.peek("a", "gone") == "gone" and lru.get("a", "gone") == "gone"


def test_bytes_are_weighed_and_counted_back_on_replace_and_pop():
    lru = LRU(max_bytes=10, weigh=len)
    lru.put("a", b"xxxx")
    lru.put("a", b"xxxxxx")  # replaced: its old weight is given back
    assert lru.nbytes == 6
    assert lru.put("b", b"xxxx", nbytes=3) == ()  # an explicit weight wins over weigh()
    assert lru.nbytes == 9
    assert lru.put("c", b"xx") == [("a", b"xxxxxx")]
    assert lru.pop("b") == b"xxxx" and lru.nbytes == 2
    assert lru.pop("b") is None and lru.nbytes == 2


def test_both_bounds_hold_and_the_entry_just_put_stays():
    lru = LRU(max_items=3, max_bytes=10, weigh=lambda v: v)
    for k, v in enumerate([3, 3, 3]):
        lru.put(k, v)
    assert [k for k, _ in lru.put(3, 4)] == [0]  # bytes: 13 > 10
    assert lru.nbytes == 10 and len(lru) == 3
    assert [k for k, _ in lru.put(4, 50)] == [1, 2, 3]  # alone over the bound, but kept
    assert list(lru.keys()) == [4] and lru.nbytes == 50


def test_shrink_keeps_nothing_back_and_takes_a_new_bound():
    lru = LRU(max_bytes=100, weigh=lambda v: v)
    lru.put("a", 30)
    lru.put("b", 30)
    assert lru.shrink(40) == [("a", 30)] and lru.max_bytes == 40
    assert lru.shrink(0) == [("b", 30)] and len(lru) == 0 and lru.nbytes == 0


def test_items_is_a_snapshot_oldest_first_and_touch_tolerates_a_missing_key():
    lru = LRU()
    lru.put("a", 1)
    lru.put("b", 2)
    lru.touch("a")
    lru.touch("gone")
    snapshot = lru.items()
    lru.clear()
    assert snapshot == [("b", 2), ("a", 1)] and len(lru) == 0 and lru.nbytes == 0


def test_unbounded_by_default_and_none_values_weigh_nothing():
    lru = LRU(max_bytes=1, weigh=lambda v: 0 if v is None else v)
    for k in range(1000):
        lru.put(k, None)
    assert len(lru) == 1000 and lru.nbytes == 0
    assert k in lru and lru.peek(k, "absent") is None


def test_byte_lru_keeps_nothing_over_a_quarter_and_is_shared_by_threads():
    cache = ByteLRU(1000)
    cache.put("big", b"x", 251)
    assert cache.get("big") is None and cache.used == 0

    def hammer(base: int) -> None:
        for k in range(2000):
            cache.put((base, k), k, 100)
            cache.get((base, k - 1))
    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.used <= 1000 and len(cache) == cache.used // 100
    cache.clear()
    assert len(cache) == 0 and cache.used == 0
