"""Waking the trio loop from a worker thread: the one way the mount hands a result back.

A worker thread never touches trio objects itself (an Event set from a thread is a race);
it asks the loop to run a function soon, with the token the loop gave when the work began.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

Token = trio.lowlevel.TrioToken


def token() -> Token:
    """The running loop's token (call on the loop, before handing work to a thread)."""
    return trio.lowlevel.current_trio_token()


def call_soon(loop: Token, fn: Callable, *args) -> None:
    """From any thread: fn(*args) runs on the loop soon. Once the loop has ended (the mount is
    going away) nobody waits for anything any more, and nothing is run."""
    try:
        loop.run_sync_soon(fn, *args)
    except trio.RunFinishedError:
        pass
