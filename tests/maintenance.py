"""git maintenance under readers: a thread that runs git's maintenance on a repository while readers
walk every object through the mount or the library, checking each read against its id.

Shared by tests/gitfs/test_maintenance.py and scripts/soak.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections import Counter
from pathlib import Path

KINDS = (b"blob", b"tree", b"commit", b"tag")


def hashes_to(oid: str, data: bytes) -> bool:
    """Whether data is the content of object oid, whatever its kind: no oracle can lie."""
    name = "sha1" if len(oid) == 40 else "sha256"
    return any(hashlib.new(name, b"%s %d\0" % (k, len(data)) + data).hexdigest() == oid for k in KINDS)


class Maintenance(threading.Thread):
    """Runs git maintenance on the repository until stopped; records the unreachable objects it
    wrote, the only ones gc may prune. repo: anything with .path (the work tree) and .git (an
    oracle.Git)."""

    def __init__(self, repo):
        super().__init__(daemon=True)
        self.repo = repo
        self.git = repo.git
        self.stop = threading.Event()
        self.unreachable: set[str] = set()
        self.steps = Counter()
        self.error: BaseException | None = None

    def commit(self, n: int) -> None:
        (Path(self.repo.path) / f"maint-{n % 7}.txt").write_text(f"maintenance round {n}\n" * (n % 50 + 1))
        self.git.run("add", "-A")
        self.git.run("commit", "-q", "-m", f"maintenance round {n}")

    def unreachable_blob(self, n: int) -> None:
        oid = self.git.run("hash-object", "-w", "--stdin", input=f"garbage {n} that nothing references\n")
        self.unreachable.add(oid.strip())

    def run(self) -> None:
        steps = [
            ("commit", self.commit),
            ("unreachable", self.unreachable_blob),
            ("repack -ad", lambda n: self.git.run("repack", "-q", "-a", "-d")),
            ("midx write", lambda n: self.git.run("multi-pack-index", "write")),
            ("commit", self.commit),
            ("repack -d", lambda n: self.git.run("repack", "-q", "-d")),
            ("unreachable", self.unreachable_blob),
            ("gc --prune=now", lambda n: self.git.run("-c", "gc.autoDetach=false", "gc", "-q", "--prune=now")),
            ("midx write", lambda n: self.git.run("multi-pack-index", "write")),
            ("commit", self.commit),
            ("repack --write-midx", lambda n: self.git.run("repack", "-q", "-d", "--write-midx")),
        ]
        n = 0
        try:
            while not self.stop.is_set():
                name, step = steps[n % len(steps)]
                step(n)
                self.steps[name] += 1
                n += 1
        except BaseException as e:  # reported by the caller
            self.error = e


class MountView:
    """Objects as a mount shows them: buckets, names in a bucket, bytes (OSError as the kernel says).
    With browse=True, readers also walk .refs and .tree/HEAD between buckets."""

    def __init__(self, mnt: Path, browse: bool = False):
        self.mnt = Path(mnt)
        self.browsing = browse

    def browse(self, timed) -> None:
        """Lists every .refs directory and reads each ref; lists .tree/HEAD and reads or lists
        its first 50 entries; each operation through timed(what, fn, *args). Names that vanish
        meanwhile (git deleted a ref) are skipped."""
        pending = [self.mnt / ".refs"]
        while pending:
            top = pending.pop()
            for entry in timed(f"list {top}", lambda p: list(os.scandir(p)), top):
                path = Path(entry.path)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                    else:
                        timed(f"read {path}", path.read_bytes)
                except FileNotFoundError:
                    pass
        tree = self.mnt / ".tree" / "HEAD"
        try:
            for entry in sorted(timed(f"list {tree}", os.listdir, tree))[:50]:
                path = tree / entry
                if timed(f"stat {path}", path.is_dir):
                    timed(f"list {path}", os.listdir, path)
                elif path.is_file():
                    timed(f"read {path}", path.read_bytes)
        except FileNotFoundError:
            pass

    def buckets(self) -> list[str]:
        return sorted(os.listdir(self.mnt))

    def names(self, bucket: str) -> list[str]:
        return os.listdir(self.mnt / bucket)

    def read(self, oid: str) -> bytes:
        return (self.mnt / oid[:2] / oid[2:]).read_bytes()


class StoreView:
    """The same through the library, refreshing where the mount refreshes (at each listing), with
    odb's errors as the mount turns them into errno: not found is ENOENT, the rest EIO."""

    def __init__(self, store):
        import odb

        self.store = store
        self._odb = odb

    def buckets(self) -> list[str]:
        self.store.refresh()
        return ["%02x" % b for b in self.store.nonempty_buckets()]

    def names(self, bucket: str) -> list[str]:
        b = int(bucket, 16)
        self.store.refresh(b)
        names = [oid[2:] for oid in self.store.iter_bucket(b)]
        if not names:
            raise FileNotFoundError(errno.ENOENT, "bucket gone", bucket)
        return names

    def read(self, oid: str) -> bytes:
        try:
            return self.store.read(oid)[1]
        except self._odb.ObjectNotFound:
            raise FileNotFoundError(errno.ENOENT, "not found", oid) from None
        except self._odb.OdbError as e:
            raise OSError(errno.EIO, str(e), oid) from None


class Reader(threading.Thread):
    """Walks every object of a view again and again until maintenance stops, checking each read."""

    def __init__(self, view, maintenance: Maintenance, seed: int):
        super().__init__(daemon=True)
        self.view = view
        self.maintenance = maintenance
        self.seed = seed
        self.results = Counter()
        self.bad: list[str] = []
        self.enoent: set[str] = set()
        self.slowest = (0.0, "")  # seconds, and what took them

    def run(self) -> None:
        try:
            while not self.maintenance.stop.is_set():
                self.walk()
        except BaseException as e:
            self.bad.append(f"reader crashed: {e!r}")

    def timed(self, what: str, fn, *args):
        began = time.monotonic()
        try:
            return fn(*args)
        finally:
            took = time.monotonic() - began
            if took > self.slowest[0]:
                self.slowest = (took, what)

    def walk(self) -> None:
        buckets = self.timed("list the root", self.view.buckets)
        if self.seed % 2:
            buckets.reverse()
        for bucket in buckets:
            if getattr(self.view, "browsing", False):
                try:
                    self.view.browse(self.timed)
                except OSError as e:
                    self.bad.append(f"browse: {errno.errorcode.get(e.errno, e.errno)} {e}")
            try:
                names = self.timed(f"list {bucket}", self.view.names, bucket)
            except FileNotFoundError:
                self.results["bucket gone"] += 1  # emptied by gc between the two listings
                continue
            for name in names:
                self.read(bucket + name)
            if self.maintenance.stop.is_set():
                return

    def read(self, oid: str) -> None:
        try:
            data = self.timed(f"read {oid}", self.view.read, oid)
        except FileNotFoundError:
            self.results["ENOENT"] += 1
            self.enoent.add(oid)
            return
        except OSError as e:
            self.bad.append(f"{oid}: {errno.errorcode.get(e.errno, e.errno)} {e}")
            return
        if hashes_to(oid, data):
            self.results["ok"] += 1
        else:
            self.bad.append(f"{oid}: wrong bytes ({len(data)} bytes)")


def run_under_maintenance(repo, views: list, seconds: float):
    """Runs maintenance on repo for `seconds` under one Reader per view; (maintenance, readers)
    once every thread has stopped (a thread still alive after two minutes is reported hung)."""
    maintenance = Maintenance(repo)
    readers = [Reader(view, maintenance, k) for k, view in enumerate(views)]
    for r in readers:
        r.start()
    maintenance.start()
    maintenance.stop.wait(seconds)
    maintenance.stop.set()
    maintenance.join(120)
    for r in readers:
        r.join(120)
    hung = [t for t in (maintenance, *readers) if t.is_alive()]
    if hung:
        raise RuntimeError(f"{len(hung)} thread(s) hung")
    return maintenance, readers
