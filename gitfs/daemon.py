"""The mount process: detach from the caller, mount, run the trio loop until unmounted or signalled."""

from __future__ import annotations

import logging
import os
import signal
import sys

import pyfuse3
import trio

from . import features
from . import helper_protocol as hp
from .logs import setup_logging
from .operations import GitOperations, PyfuseKernel
from .view import MountView
from .workers import WorkerPool

log = logging.getLogger("gitfs")


class MountError(Exception):
    """The mount could not be set up; the message is the one line the user sees."""


GIL_SWITCH_INTERVAL = 0.001
# Helper processes that inflate objects and read sizes beside the FUSE loop: on two cores, two
# keep both busy during a grep (the loop itself then has almost nothing to do).
HELPERS = max(1, min(2, os.cpu_count() or 2))


class Session:
    """What one mount runs: the worker pool and its helpers, the view, the pyfuse3 handlers."""

    def __init__(self, store, repository, mountpoint: str, cache_size: int, verify: bool):
        config = hp.StoreConfig(repository, verify, tuple(sys.path))
        no_open = features.reads_by_inode() and os.environ.get("GITFS_PLAIN_OPEN") != "1"
        if not no_open:
            log.info("pyfuse3 cannot serve reads without OPEN (patches/pyfuse3-read-by-inode.patch "
                     "is not applied): files are opened the ordinary way")
        self.pool = WorkerPool(store, config, HELPERS)
        self.view = MountView(store, self.pool, cache_size=cache_size, kernel=PyfuseKernel(),
                              repository=repository, mountpoint=mountpoint)
        self.operations = GitOperations(self.view, no_open=no_open)

    def close(self) -> None:
        """After the loop has ended: the workers stop before the store closes under them."""
        self.pool.close()

    def summary(self) -> str:
        ahead = {**self.view.ahead.counts, **(self.view.kernel_cache.counts if self.view.kernel_cache else {})}
        counts = {**self.view.counts, **{f"{k} (read ahead)": v for k, v in ahead.items()}}
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no requests"


def detach_and_serve(args, store, mountpoint: str, options: set[str]) -> int:
    """Forks; the parent returns 0 once the child reports a live mount."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return wait_until_live(read_end, pid)
    os.close(read_end)
    os.setsid()
    os.chdir("/")
    try:
        status = serve(store, args, mountpoint, options, ready=lambda: announce_live(args, write_end))
    except BaseException as e:  # the parent needs one line, whatever happened
        report_failure(write_end, e)
        status = 1
    os._exit(status)


def wait_until_live(read_end: int, pid: int) -> int:
    message = b""
    while chunk := os.read(read_end, 4096):
        message += chunk
    os.close(read_end)
    if message.startswith(b"ok"):
        return 0
    os.waitpid(pid, 0)
    text = message.decode(errors="replace").strip()
    print(f"gitfs: {text or 'the mount process exited before the mount was live'}", file=sys.stderr)
    return 1


def announce_live(args, write_end: int) -> None:
    """In the child, once mounted: drop the caller's stdio, then tell the parent."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    setup_logging(args, detached=True)
    os.write(write_end, b"ok\n")
    os.close(write_end)


def report_failure(write_end: int, error: BaseException) -> None:
    text = str(error) if isinstance(error, MountError) else f"{type(error).__name__}: {error}"
    try:
        os.write(write_end, text.encode(errors="replace") + b"\n")
    except OSError:
        pass


def serve(store, args, mountpoint: str, options: set[str], ready) -> int:
    """Mounts, calls ready() once live, runs until unmounted or signalled."""
    # The FUSE loop shares the GIL with worker threads; with the default 5 ms hand-off a woken
    # loop waits too long to answer the kernel.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    session = Session(store, args.repo, mountpoint, args.cache_size, args.verify)
    # Signals that arrive before trio listens must wait, not kill us mid-mount.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pyfuse3.init(session.operations, mountpoint, options)
    except RuntimeError:
        session.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        raise MountError(f"FUSE refused to mount {mountpoint} with options {','.join(sorted(options))}") from None
    if ready is not None:
        try:
            ready()
        except BaseException:
            pyfuse3.close(unmount=True)
            session.close()
            raise
    log.info("mounted %s on %s", options_fsname(options), mountpoint)
    try:
        trio.run(run_until_stopped, session)
    except BaseException:
        log.exception("the FUSE loop failed")
        pyfuse3.close(unmount=True)
        session.close()
        return 1
    pyfuse3.close(unmount=True)
    session.close()
    store.close()
    log.info("unmounted %s (%s)", mountpoint, session.summary())
    return 0


def options_fsname(options: set[str]) -> str:
    return next((o[len("fsname="):] for o in options if o.startswith("fsname=")), "?")


async def run_until_stopped(session: Session) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()
    await session.view.close()


async def stop_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        async for signum in signals:
            log.info("%s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
            return
