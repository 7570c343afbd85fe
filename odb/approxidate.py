"""Dates in a reflog selector, `<ref>@{<date>}`: a subset of git's approxidate (date.c).

Seconds since the epoch (9 digits or more), `YYYY-MM-DD[( |T)HH:MM[:SS]][ ]([+-]HHMM|Z)` (local
time without a zone, today's time of day without a time, as git), `now`, `yesterday`,
`<n>.<unit>.ago` / `<n> <unit> ago`; anything else is BadRevision.
"""

from __future__ import annotations

import calendar
import re
import time

from .errors import BadRevision

# git's approxidate units, in seconds ("month" and "year" move the calendar instead).
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_AGO = re.compile(r"(\d+)[ .]+(second|minute|hour|day|week|month|year)s?[ .]+ago")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
                  r"(?: ?(z|[+-]\d{2}:?\d{2}))?")  # matched against the lower-cased text


def parse_date(text: str, rev: str, now: float | None = None) -> int:
    """Seconds since the epoch of a date in `@{...}` (see the module docstring)."""
    try:
        return _parse_date(text, rev, int(time.time() if now is None else now))
    except (OverflowError, ValueError, OSError):
        raise BadRevision(rev, f"the date {text!r} is out of range") from None


def _parse_date(text: str, rev: str, now: int) -> int:
    t = text.strip().lower()
    if t == "now":
        return now
    if t == "yesterday":
        return now - 86400
    m = _AGO.fullmatch(t)
    if m and len(m.group(1)) > 12:
        raise BadRevision(rev, f"the date {text!r} is out of range")
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if unit in _UNITS:
            return now - n * _UNITS[unit]
        tm = time.localtime(now)
        months = n * (12 if unit == "year" else 1)
        year, month = divmod(tm.tm_year * 12 + tm.tm_mon - 1 - months, 12)
        return int(time.mktime((year, month + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, 0, 0, -1)))
    m = _ISO.fullmatch(t)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if m.group(4) is None:
            tm = time.localtime(now)  # approxidate keeps the time of day it did not read
            hour, minute, second = tm.tm_hour, tm.tm_min, tm.tm_sec
        else:
            hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            raise BadRevision(rev, f"{text!r} is not a date")
        fields = (year, month, day, hour, minute, second, 0, 0, -1)
        zone = m.group(7)
        if zone is None:
            return int(time.mktime(fields))
        seconds = calendar.timegm(fields)
        if zone == "z":
            return seconds
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        return seconds - offset if zone[0] == "+" else seconds + offset
    raise BadRevision(rev, f"cannot read the date {text!r} (seconds since 1970, YYYY-MM-DD HH:MM:SS, "
                           "or <n>.<unit>.ago)")
