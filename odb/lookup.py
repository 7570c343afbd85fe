"""How a store finds an object and reads it: the first copy, its other copies only when that one is
damaged, and after a miss a refresh and another look, while git keeps changing the repository.

Store inherits this rule (Lookup) rather than holding it, so that the rule reads alone; it asks
of the store its objects directories (_dirs), its format, refresh() and generation.
"""

from __future__ import annotations

import logging
from typing import Iterator

from .objects.delta_chain import Location
from .errors import AccessDenied, CorruptObject, ObjectNotFound, OdbError
from .objects_dir import ObjectsDir
from .oid import ObjectFormat, parse_oid

log = logging.getLogger("odb")

# Times a read looks again when the file it was reading from vanished (git replaced the pack):
# under back-to-back repacks one more look was seen to miss (issue 17's maintenance flake).
MAX_VANISHED = 4
# Refreshes a miss may take while each finds the repository changed (see Lookup._after_refresh).
MAX_LOOKS = 4


class Lookup:
    """Where an object is (_find, _locations) and what a read through action(raw, location)
    makes of misses and damage (_first_good); the base of Store, which also gives refresh()."""

    _dirs: list[ObjectsDir]  # in lookup order: the repository's own, then its alternates
    format: ObjectFormat
    generation: int  # moved by every refresh that saw a change

    def _find(self, raw: bytes) -> Location | None:
        for d in self._dirs:
            loc = d.first_location(raw)
            if loc is not None:
                return loc
        return None

    def _locations(self, raw: bytes) -> Iterator[Location]:
        for d in self._dirs:
            yield from d.locations(raw)

    def _first_good(self, oid, action):
        """Runs action on the object's first location, and on its other copies only if that
        one is damaged: damage in one pack must not hide a good copy elsewhere. A miss
        refreshes once and retries, since git may have just repacked."""
        raw = parse_oid(oid, self.format)
        loc = self._find(raw)
        if loc is not None:
            try:
                return action(raw, loc)
            except (CorruptObject, OSError, ValueError):
                pass  # the careful path below starts over, and reports what it sees
        return self._each_location(raw, action)

    def _each_location(self, raw: bytes, action):
        locs = self._locations(raw)
        loc = next(locs, None)
        if loc is None:
            loc, locs = self._look_again(raw)
        first_error = None
        vanished = 0
        while loc is not None:
            try:
                return action(raw, loc)
            except FileNotFoundError:
                # git repacked or pruned between the lookup and the read: look again, a few
                # times at most (git may replace the new pack too before this read gets to it).
                vanished += 1
                if vanished > MAX_VANISHED:
                    raise ObjectNotFound(raw.hex()) from None
                loc, locs = self._look_again(raw)
                continue
            except (CorruptObject, OSError, ValueError) as e:
                error = self._error_at(raw, loc, e)
                if isinstance(error, AccessDenied):
                    log.debug("object %s: %s", raw.hex(), error)  # the mode shown says so already
                else:
                    log.warning("object %s: %s", raw.hex(), error)
                first_error = first_error or error
            loc = next(locs, None)
        raise first_error

    def _look_again(self, raw: bytes) -> tuple[Location, Iterator[Location]]:
        """After a miss: (the first location, the others) once a refresh shows the object;
        ObjectNotFound if none does (see _after_refresh)."""
        locs = self._after_refresh(lambda: list(self._locations(raw)))
        if not locs:
            raise ObjectNotFound(raw.hex())
        rest = iter(locs)
        return next(rest), rest

    def _after_refresh(self, look, bucket: int | None = None):
        """What look() finds after a refresh, looked for again while each refresh finds the
        repository changed (MAX_LOOKS times at most); falsy if nothing was found.

        One refresh is not enough. git writes an object's new home before it deletes the old
        one, but a look is not atomic: a refresh lists pack A, git writes pack D and deletes A,
        and the look then finds A gone (skipped as unreadable) and D not yet listed. The
        repository changed under that look, so the next refresh sees a change, and the object
        is looked for again; a look over a repository that its refresh found unchanged is
        final. The first look happens whatever its refresh says: another thread may have
        refreshed since the miss (issue 17's ENOENT for a reachable object under maintenance).
        """
        found = None
        for _ in range(MAX_LOOKS):
            seen = self.generation
            self.refresh(bucket)
            found = look()
            if found or self.generation == seen:
                break
        return found

    def _error_at(self, raw: bytes, loc: Location, e: Exception) -> OdbError:
        """What a failed read at loc means: AccessDenied for EACCES/EPERM, else CorruptObject."""
        if isinstance(e, PermissionError):
            return AccessDenied(e.filename or self._where(loc))
        if isinstance(e, CorruptObject):
            error = e
        else:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            error = CorruptObject(self._where(loc), loc.offset if loc.pack else None, reason)
        if error.oid is None:
            error.oid = raw.hex()
        return error

    @staticmethod
    def _where(loc: Location) -> str:
        return loc.pack.pack_path if loc.pack else loc.source.loose.path(loc.raw)
