"""The mount process: detach from the caller, mount, run the trio loop until unmounted or signalled."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile

import pyfuse3
import trio

import odb
from odb import refused_paths

from gitfs import features
from gitfs.cli import logs
from gitfs.view import status
from gitfs.cli import systemd
from gitfs.engine import helper_protocol as hp
from gitfs.engine import memory
from gitfs.fuse import compiled_requests
from gitfs.fuse.operations import GitOperations, PyfuseKernel
from gitfs.tuning import COMPILED_UPKEEP, FAST_SPIN_US, GIL_SWITCH_INTERVAL, HELPERS, DELTA_BASE_CACHE, REQUEST_THREADS, SPIN_US
from gitfs.view.mount_view import MountView
from gitfs.engine.workers import WorkerPool

log = logging.getLogger("gitfs")


class MountError(Exception):
    """The mount could not be set up; the message is the one line the user sees."""


# Every signal whose default action would end the mount (signal(7): Term or Core) either
# unmounts cleanly or is ignored. A dead daemon leaves a mount that answers ENOTCONN until
# someone unmounts it, so none may kill it. Left at their default are only the signals of a
# broken program (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS): a handler that
# returns from a real fault faults again forever; after one, recover as after SIGKILL.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGQUIT})
IGNORED_SIGNALS = frozenset({
    signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF,
    signal.SIGIO, signal.SIGPWR, signal.SIGSTKFLT, signal.SIGXCPU,
    # A stopped daemon hangs every reader of the mount: job control must not stop it.
    signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
})
HANDLED_SIGNALS = STOP_SIGNALS | IGNORED_SIGNALS
# SIGPIPE and SIGXFSZ stay ignored as Python sets them: the write fails with EPIPE or EFBIG.
REPEATS_EVERY = 60.0  # seconds between the counts of held-back warnings


def helper_processes() -> bool:
    """Whether the workers read in helper processes rather than in this process's threads.

    Helpers, by default. Since small work moved onto the loop (MountView.small), threads through
    odb's C engine beat them in 7 of the 8 rows of bench figure (11) on git.git (32 readers 5.4 s
    against 7.7 s) with 100 MB less RSS, but lose the one walk the mount is most used for: a
    `grep -r` of the whole mount took 182 s with threads and 130 s with helpers, twice each
    (equal over the first quarter of the buckets; the gap opens later). Until that is found,
    threads are GITFS_HELPERS=0; where odb reads in Python, which holds the GIL, helpers win
    everywhere (32 readers 28.3 s against 30.6 s)."""
    return os.environ.get("GITFS_HELPERS", "1") != "0"


def install_fast_path(capsule) -> None:
    """pyfuse3.set_fast_path with REQUEST_THREADS threads reading requests (None: removed)."""
    if capsule is None:
        pyfuse3.set_fast_path(None)
    else:
        pyfuse3.set_fast_path(capsule, threads=REQUEST_THREADS, spin=FAST_SPIN_US)


def delta_base_caches(cache_size: int) -> tuple[int, int]:
    """(the mount process's delta-base cache, each helper's): git's 96 MiB in all, or half of
    --cache-size when that is smaller, so that a small --cache-size bounds the bases too (half:
    the object cache takes --cache-size as well; at 64M, each helper held 12 MB less with the
    600 largest objects read). The mount process reads small objects itself (MountView.small),
    so it needs one as well: a third each (the whole 96 MiB on top of the helpers' took a grep's
    peak RSS from 262 to 316 MB)."""
    total = min(DELTA_BASE_CACHE, cache_size // 2)
    if not helper_processes():
        return total, 0
    share = total // (HELPERS + 1)
    return share, share


class Session:
    """What one mount runs: the worker pool and its helpers, the view, the pyfuse3 handlers."""

    def __init__(self, store, repository: str, mountpoint: str, cache_size: int, lfs: bool = False):
        # Nothing of this process (or of the helpers, which ask for the same) may ever look
        # inside the mount: that request would wait for the loop it blocks.
        store.refuse_under(mountpoint)
        # The mount's processes share git's 96 MiB of delta bases (delta_base_caches).
        # The helpers open the repository through the directory this process holds: they find
        # it even after it was renamed (odb/anchor.py).
        config = hp.StoreConfig(store.held_path() or repository, store.verify, tuple(sys.path),
                                refused_paths.refused(),
                                cache_size=delta_base_caches(cache_size)[1])
        if not helper_processes():
            config = None  # the worker threads read in this process
        no_open = features.reads_by_inode() and os.environ.get("GITFS_PLAIN_OPEN") != "1"
        # The workers start once the FUSE session exists: their helpers inherit its descriptor.
        self.pool = WorkerPool(store, config, HELPERS, start=False)
        self.view = MountView(store, self.pool, cache_size=cache_size, kernel=PyfuseKernel(), refs=open_refs(store),
                              mountpoint=mountpoint)
        if lfs and self.view.tree is not None:
            self.view.tree.enable_lfs(store.common_dir)
        self.operations = GitOperations(self.view, no_open=no_open)
        # LOOKUP and READ of object files answered in C where the installation allows it; READ
        # by inode needs the kernel to send no OPEN.
        self.compiled = None
        if no_open and compiled_requests.unavailable() is None:
            self.compiled = compiled_requests.CompiledRequests(self.view, install_fast_path)
            self.view.reporters["compiled requests"] = self.compiled.status

    def start(self) -> None:
        """Once mounted: the workers and their helpers start, with the session's descriptor;
        the compiled request path is installed (before the session loop runs)."""
        self.pool.start(fuse_device())
        if self.compiled is not None:
            self.compiled.start()

    async def upkeep(self) -> None:
        """Requests the compiled path answers run no Python: what they touched in the packs is
        counted, and a changed repository followed, from here too (COMPILED_UPKEEP)."""
        while self.compiled is not None:
            await trio.sleep(COMPILED_UPKEEP)
            self.compiled.watch()

    def close(self) -> None:
        """After the loop has ended: the workers stop before the store closes under them."""
        if self.compiled is not None:
            self.compiled.close()
            self.compiled = None
        self.pool.close()

    def summary(self) -> str:
        view = self.view
        counts = {**view.counts, **{f"{k} (read ahead)": v for k, v in view.read_ahead_counts().items()}}
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no requests"


def detach_and_serve(store, repository: str, mountpoint: str, options: set[str], cache_size: int,
                     log_destination: logs.Destination) -> int:
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
        code = serve(store, repository, mountpoint, options, cache_size,
                     ready=lambda: announce_live(log_destination, write_end), close_fds=(write_end,))
    except BaseException as e:  # the parent needs one line, whatever happened
        if not isinstance(e, MountError):
            # After the mount was live nobody reads the pipe: the log must say it.
            log.exception("the mount process failed")
        report_failure(write_end, e)
        code = 1
    os._exit(code)


def wait_until_live(read_end: int, pid: int) -> int:
    message = b""
    while chunk := os.read(read_end, 4096):
        message += chunk
    os.close(read_end)
    if message.startswith(b"ok"):
        # Under a Type=notify unit the daemon, not this process, is the service from now on.
        systemd.notify(f"MAINPID={pid}\nREADY=1")
        return 0
    os.waitpid(pid, 0)
    text = message.decode(errors="replace").strip()
    print(f"gitfs: {text or 'the mount process exited before the mount was live'}", file=sys.stderr)
    return 1


def announce_live(log_destination: logs.Destination, write_end: int) -> None:
    """In the child, once mounted: drop the caller's stdio, then tell the parent."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    logs.setup_logging(log_destination, debug=False)
    os.write(write_end, b"ok\n")
    os.close(write_end)


def report_failure(write_end: int, error: BaseException) -> None:
    text = str(error) if isinstance(error, MountError) else f"{type(error).__name__}: {error}"
    try:
        os.write(write_end, text.encode(errors="replace") + b"\n")
    except OSError:
        pass


def serve(store, repository: str, mountpoint: str, options: set[str], cache_size: int, ready,
          close_fds=()) -> int:
    """Mounts, calls ready() once live, runs until unmounted or signalled.

    close_fds: descriptors of the caller's; the helper processes start as fresh interpreters
    with none of ours, so nothing needs closing there.
    """
    # The FUSE loop shares the GIL with worker threads; with the default 5 ms hand-off a woken
    # loop waits too long to answer the kernel.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    memory.bound_allocator()
    hold_signals()
    lfs = "lfs" in options  # ours, not FUSE's: LFS content under .tree
    options = options - {"lfs"}
    session = Session(store, repository, mountpoint, cache_size, lfs=lfs)
    status.record_mount(repository, mountpoint)
    try:
        with libfuse_messages() as said:
            pyfuse3.init(session.operations, mountpoint, fuse_options(options))
    except RuntimeError:
        session.close()
        why = "; ".join(line.removeprefix("fuse: ") for line in said) or f"options {','.join(sorted(options))}"
        raise MountError(f"FUSE refused to mount {mountpoint}: {why}") from None
    for line in said:
        log.warning("libfuse: %s", line)
    if features.waits_awake() and SPIN_US > 0:
        pyfuse3.set_spin(SPIN_US)
    try:
        session.start()
        if ready is not None:
            ready()
    except BaseException:
        pyfuse3.close(unmount=True)
        session.close()
        raise
    if session.operations.no_open:
        log.info("mounted %s on %s", repository, mountpoint)
    elif features.reads_by_inode():
        log.info("mounted %s on %s; files are opened the ordinary way: GITFS_PLAIN_OPEN=1", repository, mountpoint)
    else:
        # The first line about the mount says what the slow path costs and the one command to leave it.
        log.info("mounted %s on %s; files are opened the ordinary way, 3 kernel requests per file read "
                 "instead of 1 (stock pyfuse3); for the fast path run: %s, then mount again",
                 repository, mountpoint, features.fast_path_command())
    if not features.features()["c_delta"]:
        log.warning("the C delta accelerator (odb/_delta.c) is not built: deltas are applied in pure "
                    "Python, several times slower (see gitfs --version)")
    try:
        trio.run(run_until_stopped, session)
    except BaseException:
        log.exception("the FUSE loop failed")
        pyfuse3.close(unmount=True)
        session.close()
        return 1
    pyfuse3.close(unmount=True)
    try:
        session.close()
        store.close()
    except Exception:  # unmounted already: say what failed after it, and still say it is done
        log.exception("closing the store after the unmount failed")
    log.info("unmounted %s (%s)", mountpoint, session.summary())
    logs.flush_repeats(everything=True)
    return 0


@contextlib.contextmanager
def libfuse_messages():
    """Holds what libfuse writes to descriptor 2 while mounting (`fuse: unknown option(s): ...`),
    so that a refusal is one line of ours instead of libfuse's line and then ours. Yields the
    list of its lines, filled when the block ends."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read(64 << 10).decode(errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def open_refs(store):
    """The repository's refs for .refs and .tree; None for a bare objects directory."""
    if store.git_dir is None:
        return None
    try:
        return odb.RefStore(store.git_dir, store.common_dir, store.format)
    except (odb.OdbError, OSError) as e:
        log.warning("no .refs or .tree: cannot read the refs (%s)", e)
        return None


def fuse_device() -> int:
    """The FUSE session's descriptor (pyfuse3 keeps it private): the one open /dev/fuse."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "/dev/fuse":
                return int(name)
        except OSError:
            continue
    return -1


def fuse_options(options: set[str]) -> set[str]:
    return {o if o.isascii() else _FsEncoded(o) for o in options}


class _FsEncoded(str):
    """An option holding a path that is not ASCII (fsname=/srv/dépôt.git).

    pyfuse3 encodes every option as ASCII (make_fuse_args calls .encode("us-ascii")); this one
    encodes as the path's own bytes instead, so that any repository path git accepts mounts.
    """

    def encode(self, encoding="utf-8", errors="strict") -> bytes:
        return str.encode(self, sys.getfilesystemencoding(), "surrogateescape")


def hold_signals() -> None:
    """Until trio listens, the handled signals wait (blocked) instead of killing the mount.

    Their disposition becomes "ignore" as well: the helper processes, started next, inherit it,
    and it is what any thread sees once trio stops listening, so that no late signal kills
    the daemon half-way through unmounting. (A blocked signal is kept pending even while
    ignored, so that none sent during the mount is lost.)
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


async def run_until_stopped(session: Session) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal)
        nursery.start_soon(report_repeated_warnings)
        nursery.start_soon(session.upkeep)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()
    await session.view.close()


async def stop_on_signal() -> None:
    with trio.open_signal_receiver(*HANDLED_SIGNALS) as signals:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        async for signum in signals:
            if signum in STOP_SIGNALS:
                log.info("%s: unmounting", signal_name(signum))
                systemd.notify("STOPPING=1")
                pyfuse3.terminate()
                return
            if signum == signal.SIGHUP:
                log.info("SIGHUP ignored: there is nothing to reload (every directory read refreshes "
                         "the view); SIGINT, SIGTERM or SIGQUIT unmounts")
            else:
                log.info("%s ignored (SIGINT, SIGTERM or SIGQUIT unmounts)", signal_name(signum))


async def report_repeated_warnings() -> None:
    while True:
        await trio.sleep(REPEATS_EVERY)
        logs.flush_repeats()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"
