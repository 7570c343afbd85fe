"""Store.read_sizes and Store.stat_many: the sizes (and Accesses) of many objects per call.

Objects found in a pack that opens, whose headers read, are answered many at once
(odb/pack/sizes.py, in C when it is built): what listings ask of every object. Anything else
(loose objects, damage, a miss, which refreshes) goes through the store's read_size or stat
itself, so that the answers are theirs in every case.
"""

from __future__ import annotations

from array import array

from .pack import sizes
from .access import AccessRules
from .errors import OdbError
from .objects_dir import ObjectsDir
from .pack.sizes import MISSING


def read_sizes(ids: bytes, dirs: list[ObjectsDir], raw_len: int, read_size) -> tuple[array, dict[int, Exception]]:
    """(sizes, errors by index) of the concatenated raw ids, found in dirs in turn; read_size
    (the store's) answers those the packs do not."""
    out, errors, _ = _bulk(ids, dirs, raw_len, read_size, None)
    return out, errors


def stat_many(ids: bytes, dirs: list[ObjectsDir], raw_len: int, stat,
              rules: AccessRules) -> tuple[array, dict[int, Exception], list]:
    """read_sizes with each object's Access beside its size, by rules for the packs; stat (the
    store's) answers those the packs do not."""
    return _bulk(ids, dirs, raw_len, stat, rules)


def _bulk(ids: bytes, dirs: list[ObjectsDir], raw_len: int, careful_call,
          rules: AccessRules | None) -> tuple[array, dict[int, Exception], list]:
    """Sizes (and, with rules, Accesses) of many ids: bulk through the packs, the rest one by
    one through careful_call (read_size, or with rules stat), so the answers are theirs in
    every case."""
    ids = bytes(ids)
    n = raw_len
    count = len(ids) // n
    out = array("q", [-1]) * -(-len(ids) // n)
    accesses: list = [None] * len(out) if rules is not None else []
    careful = _sizes_in_packs(ids, count, out, accesses, dirs, n, rules)
    careful.extend(range(count, len(out)))  # a short id at the end: read_size says what it is
    errors: dict[int, Exception] = {}
    for k in sorted(careful):
        try:
            if rules is None:
                out[k] = careful_call(ids[k * n : (k + 1) * n])
            else:
                out[k], accesses[k] = careful_call(ids[k * n : (k + 1) * n])
        except (OdbError, OSError) as e:  # what read_size raises is the answer, carried whole
            errors[k] = e
    return out, errors, accesses


def _sizes_in_packs(ids: bytes, count: int, out: array, accesses: list, dirs: list[ObjectsDir], n: int,
                    rules: AccessRules | None) -> list[int]:
    """Fills out with the sizes of the first count ids that packs answer in bulk, looking
    in each objects directory in turn as the store's _find does, and accesses (when it is
    not empty) with their packs' Access by rules; returns the indexes left to read_size."""
    careful: list[int] = []
    pending, block = range(count), ids[: count * n]
    for d in dirs:
        if not pending:
            break
        located = d.packs.locate_many(block)
        got = sizes.entry_sizes(located, n)
        of_pack = _pack_accesses(located, rules) if accesses else None
        if of_pack is None and accesses:
            careful.extend(pending)  # a pack's files do not stat: stat says why, one by one
            return careful
        if len(pending) == count and min(got, default=0) >= 0:
            out[:count] = got  # all found and read: the usual case
            if accesses:
                accesses[:count] = [of_pack[j] for j in located.which]
            return careful
        missed = []
        for j, k in enumerate(pending):
            if got[j] >= 0:
                out[k] = got[j]
                if accesses:
                    accesses[k] = of_pack[located.which[j]]
            elif located.which[j] == MISSING and not d.loose.contains(ids[k * n : (k + 1) * n]):
                missed.append(k)  # the next objects directory may have it
            else:
                careful.append(k)
        pending = missed
        block = b"".join([ids[k * n : (k + 1) * n] for k in missed])
    careful.extend(pending)
    return careful


def _pack_accesses(located, rules: AccessRules) -> list | None:
    """The Access of each pack located names (by position), or None when one of them does
    not stat (it vanished): the careful path then reports it."""
    used = [j for j in set(located.which) if j >= 0]
    out: list = [None] * len(located.packs)
    try:
        for j in used:
            out[j] = rules.for_pack(located.packs[j])
    except OSError:
        return None
    return out
