"""The mount's own status: the user.gitfs.status attribute of its root.

The daemon answers getxattr(MNT, "user.gitfs.status") with UTF-8 JSON: pid, repository,
mountpoint, started (unix time), cache {bytes, limit, parts: {objects, tree listings, ...}},
requests {kind: count}, features. `gitfs status` reads it (gitfs/cli/probe.py).
"""

from __future__ import annotations

import json
import os
import time
from typing import Mapping

XATTR = b"user.gitfs.status"

# What the daemon knows about itself; set once, before the mount goes live.
_facts: dict = {}


def record_mount(repository: str, mountpoint: str) -> None:
    _facts.update(repository=repository, mountpoint=mountpoint, started=time.time())


def status_json(cache_bytes: int, cache_limit: int, requests: Mapping[str, int] | None = None,
                cache_parts: Mapping[str, int] | None = None, **more) -> bytes:
    """The attribute's value, as the daemon sees itself now; `more` adds fields (the workers).
    cache_parts: the bytes counted in cache_bytes, by what holds them (objects, listings...)."""
    from gitfs.features import features
    facts = {"pid": os.getpid(), **_facts,
             "cache": {"bytes": cache_bytes, "limit": cache_limit, "parts": dict(cache_parts or {})},
             "requests": dict(requests or {}), "features": features(), **more}
    # ensure_ascii: a path that is not UTF-8 travels as \udcXX escapes, which os.fsencode undoes.
    return json.dumps(facts, sort_keys=True).encode()
