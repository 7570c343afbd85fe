"""Benchmark reference side: the object list of a repository and the same work timed with git."""

import os
import subprocess
import time
from dataclasses import dataclass

FIND_SIZE_LIMIT = 1024  # `find -size +1k` rounds up to KiB units, so it selects sizes > 1024 bytes.


class GitError(Exception):
    """git refused the repository or failed; the message is one line."""


def git(repo, *args, **kwargs):
    """Run git in repo and return its stdout as text; raise GitError with git's first line."""
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[0]
        raise GitError(f"git {args[0]}: {first}")
    return proc.stdout


@dataclass
class ObjectList:
    """Every object of the repository as git sees it, in id order."""

    ids: list
    sizes: list
    object_format: str

    def sample_buckets(self, want):
        """Buckets 00 up to want-1; in a repository too small to fill them, its first `want` buckets."""
        present = sorted({oid[:2] for oid in self.ids})
        low = [b for b in present if int(b, 16) < want]
        return low if low else present[:want]

    def in_buckets(self, buckets):
        """(ids, total size) of the objects in the given buckets, in id order."""
        chosen = set(buckets)
        pairs = [(oid, size) for oid, size in zip(self.ids, self.sizes) if oid[:2] in chosen]
        return [oid for oid, _ in pairs], sum(size for _, size in pairs)

    def count_larger_than(self, limit):
        return sum(1 for size in self.sizes if size > limit)


def list_objects(repo):
    out = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objectsize)")
    ids, sizes = [], []
    for line in out.splitlines():
        oid, size = line.split()
        ids.append(oid)
        sizes.append(int(size))
    object_format = git(repo, "rev-parse", "--show-object-format").strip()
    return ObjectList(ids, sizes, object_format)


@dataclass
class Run:
    """One timed command: wall seconds, exit status, stdout lines and bytes (if counted), stderr, peak RSS."""

    seconds: float
    status: int
    lines: int | None
    stderr: str
    max_rss: int  # bytes, from the kernel's accounting of the finished process
    cpu: float  # user + system seconds of the process
    bytes: int | None = None


def timed_stream(cmd, stdin_path=None, cwd=None, env=None, count_lines=False, stdout_path=None):
    """Run cmd and drain its stdout: counting lines and bytes through a pipe, into stdout_path,
    or into /dev/null."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    if stdout_path:
        stdout = open(stdout_path, "wb")
    else:
        stdout = subprocess.PIPE if count_lines else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd, env=env)
        lines = size = None
        if count_lines and not stdout_path:
            lines = size = 0
            while chunk := proc.stdout.read(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
        err = proc.stderr.read()
        # wait4 rather than wait: it also reports the child's peak RSS.
        _, wait_status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        return Run(seconds, proc.returncode, lines, err.decode(errors="replace"), usage.ru_maxrss * 1024,
                   usage.ru_utime + usage.ru_stime, size)
    finally:
        if stdin_path:
            stdin.close()
        if stdout_path:
            stdout.close()


def _checked(run, what):
    if run.status != 0:
        raise GitError(f"{what}: " + (run.stderr.strip().splitlines() or ["failed"])[0])
    return run


def cat_file_batch(repo, ids_path, check=False):
    """`git cat-file --batch` (or --batch-check) over the ids in ids_path, output discarded."""
    option = "--batch-check" if check else "--batch"
    cmd = ["git", "-C", repo, "cat-file", option]
    return _checked(timed_stream(cmd, stdin_path=ids_path), f"git cat-file {option}")


def batch_check_all(repo):
    """`git cat-file --batch-all-objects --batch-check`, output read through a pipe."""
    cmd = ["git", "-C", repo, "cat-file", "--batch-all-objects", "--batch-check"]
    return _checked(timed_stream(cmd, count_lines=True), "git cat-file --batch-check")


def describe_repository(repo):
    """One line: object format, packs, multi-pack-index, loose count."""
    counts = dict(
        line.split(": ", 1) for line in git(repo, "count-objects", "-v").splitlines() if ": " in line
    )
    objects_dir = git(repo, "rev-parse", "--git-path", "objects").strip()
    return counts, objects_dir
