"""Benchmark scale repository: N text blobs by git fast-import, ~100 MB packs, one multi-pack-index.

Built once under a work directory (WORK/synthetic-N.git) and kept: a marker file inside names
the build, and a directory of that name without it is refused, never overwritten. The contents
are deterministic: files of a few text lines (a long tail of bigger ones), each written in
VERSIONS successive versions that differ by a line. fast-import deltas a blob against the blob
before it, so the versions of a file form chains up to VERSIONS - 1 deep, and the first version
of the next file, unrelated, is stored whole. fast-import cuts the packs itself
(--max-pack-size); a repack would drop the blobs, which no ref reaches.

    python scripts/bench_synthetic.py N [WORK]     # build (or find) it and print its path
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bench_git import GitError, git

BUILD = "gitfs bench synthetic 1"  # change when the contents change, so old builds are not reused
MARKER = "gitfs-bench-synthetic"
PACK_SIZE = "100m"
VERSIONS = 8
SEED = 1013
WORDS = (b"alpha beta gamma delta epsilon object tree blob commit pack index fanout offset size "
         b"header stream inflate deflate window cache mount kernel page read write open close "
         b"struct static const return if else for while int char void unsigned long size_t "
         b"buffer length count error path name entry table hash value key node list next prev "
         b"the of and to in is that it with as was for on are be this by not or from at which "
         b"0 1 2 3 7 8 16 32 64 128 255 256 1024 4096 65536 {} () [] ; = == != -> += <= >= && ||").split()
POOL_LINES = 4096
CHUNK = 1 << 20


def default_work():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gitfs-bench")


def repository_path(work, n):
    return os.path.join(os.path.abspath(work), f"synthetic-{n}.git")


def marker_text(n):
    return f"{BUILD}: {n} blobs, packs of at most {PACK_SIZE}, one multi-pack-index\n"


def synthetic_repository(work, n, progress=print):
    """(path, seconds the build took, or None when an earlier build was found)."""
    path = repository_path(work, n)
    if _is_build(path, n):
        return path, None
    if os.path.exists(path):
        raise GitError(f"{path} exists but is not a synthetic build of {n} blobs; remove it or choose --work")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".synthetic-{n}-", dir=os.path.dirname(path))
    os.chmod(scratch, 0o755)  # a repository as git init makes one, not mkdtemp's private directory
    progress(f"building {path}: {n} blobs by git fast-import")
    start = time.perf_counter()
    try:
        build(scratch, n)
        with open(os.path.join(scratch, MARKER), "w") as f:
            f.write(marker_text(n))
        try:
            os.rename(scratch, path)
        except OSError:
            if not _is_build(path, n):  # another bench built it meanwhile: theirs is as good
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path, time.perf_counter() - start


def _is_build(path, n):
    try:
        with open(os.path.join(path, MARKER)) as f:
            return f.read() == marker_text(n)
    except OSError:
        return False


def build(path, n):
    git(".", "init", "--quiet", "--bare", path)
    # fastimport.unpackLimit 0: a small build (the tests') is packed too, not written loose.
    for key, value in (("gc.auto", "0"), ("maintenance.auto", "false"), ("fastimport.unpackLimit", "0")):
        git(path, "config", key, value)
    proc = subprocess.Popen(["git", "-C", path, "fast-import", "--quiet", "--done", f"--max-pack-size={PACK_SIZE}"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        buffer = []
        filled = 0
        for blob in blobs(n):
            buffer.append(b"blob\ndata %d\n%s\n" % (len(blob), blob))
            filled += len(blob)
            if filled >= CHUNK:
                proc.stdin.write(b"".join(buffer))
                buffer, filled = [], 0
        proc.stdin.write(b"".join(buffer) + b"done\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass  # fast-import stopped: its message follows
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise GitError("git fast-import: " + (err.strip().splitlines() or ["failed"])[-1])
    git(path, "multi-pack-index", "write")
    counts = dict(line.split(": ", 1) for line in git(path, "count-objects", "-v").splitlines())
    if int(counts["in-pack"]) != n or int(counts["count"]) != 0:
        raise GitError(f"synthetic build: {counts['in-pack']} objects packed and {counts['count']} loose, wanted {n}")


def blobs(n):
    """n distinct text blobs, VERSIONS versions of each file in a row, the same for the same n."""
    rng = random.Random(SEED)
    pool = [b" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14))) + b"\n" for _ in range(POOL_LINES)]
    index = 0
    while index < n:
        # Most files take a few lines (median about 8, 400 bytes); a few take thousands.
        length = min(int(rng.lognormvariate(2.0, 1.1)) + 1, 3000)
        lines = [b""] + [pool[rng.randrange(POOL_LINES)] for _ in range(length)]
        for version in range(min(VERSIONS, n - index)):
            if version:
                at = rng.randrange(1, len(lines) + 1)
                lines.insert(at, pool[rng.randrange(POOL_LINES)])
            lines[0] = b"synthetic blob %d, version %d\n" % (index, version)  # every blob distinct
            yield b"".join(lines)
            index += 1


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: bench_synthetic.py N [WORK]", file=sys.stderr)
        return 2
    path, seconds = synthetic_repository(argv[2] if len(argv) == 3 else default_work(), int(argv[1]))
    print(path + ("" if seconds is None else f" (built in {seconds:.1f} s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
