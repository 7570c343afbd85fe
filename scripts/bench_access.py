"""Benchmark figure (11): every way people read through the mount (issue 18), against git.

Each row is one access pattern on a fresh mount, timed against the git command that does the same
work, with the bytes checked where the pattern reads them:
- random: 1,000 random objects, one reader, open + read each, against `cat-file --batch` on them;
- readers: 32 reader processes, 300 random objects each, every object hashed and checked against
  its id, against one `cat-file --batch` on all 9,600; with the slowest single read; both reader
  rows also time the same readers over the same bytes as files in memory (/dev/shm): their floor;
- rg / hasher / tar / rsync over the sample buckets (00-03), against `cat-file --batch`: ripgrep
  with 4 threads; a hasher that reads user.git.type and the bytes of every file; `tar c` to a
  pipe and `rsync -a` into a directory in memory;
- tree grep: `grep -r` and `rg -j2` over .tree/REV against `git grep` of the same pattern;
- open files: RSS of the mount's processes with the 600 largest objects open and read, at
  --cache-size 64M.
A missing tool (rg, rsync) gives n/a rows.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bench_figures import best
from bench_git import cat_file_batch, git, timed_stream
from bench_mount import FreshMount, through_mount
from bench_table import Row, limit_row, ratio_row
from bench_tree import Absent, default_rev, tree_root

RANDOM_OBJECTS = 1000
READERS = 32
PER_READER = 300
OPEN_FILES = 600
LIMITS = {"random": 1.5, "readers": 1.0, "buckets": 0.8, "tools": 2.0, "tree": 2.0}
SLOWEST_READ = 2.0
RSS_LIMIT = 250e6

# One reader: opens and reads each path of a list (argv[1]) and hashes it as git would (argv[2]
# names the object format); prints how many were wrong and the slowest read, in seconds.
READER = r"""
import hashlib, sys, time
paths = open(sys.argv[1]).read().split()
algo = sys.argv[2]
wrong, slowest = 0, 0.0
for path in paths:
    began = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        data = f.read()
    slowest = max(slowest, time.perf_counter() - began)
    bucket, rest = path.split("/")[-2:]
    oid = bucket + rest
    if not any(hashlib.new(algo, b"%s %d\0" % (k, len(data)) + data).hexdigest() == oid
               for k in (b"blob", b"tree", b"commit", b"tag")):
        wrong += 1
print(wrong, slowest)
"""

HASHER = r"""
import hashlib, os, sys
total = 0
for top, dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(top, name)
        kind = os.getxattr(path, "user.git.type")
        with open(path, "rb", buffering=0) as f:
            data = f.read()
        hashlib.sha1(kind + b" %d\0" % len(data) + data)
        total += 1
print(total)
"""


def figure_access(bench):
    repo, objects = bench.repo, bench.objects
    algo = "sha256" if objects.object_format == "sha256" else "sha1"
    rnd = random.Random(18)
    rows = []
    if not objects.ids:
        bench.items.append(Row("(11) access patterns", result="n/a", note="the repository has no objects"))
        return
    picks = rnd.sample(objects.ids, min(RANDOM_OBJECTS, len(objects.ids)))
    rows.append(_readers_row(bench, "(11) 1,000 random objects, one reader", picks, 1, algo, LIMITS["random"]))
    picks = [rnd.choice(objects.ids) for _ in range(READERS * PER_READER)]
    rows.append(_readers_row(bench, f"(11) {READERS} readers, {len(picks):,} random objects", picks, READERS, algo,
                             LIMITS["readers"]))
    for label, cmd, limit in _bucket_tools(bench):
        rows.append(_bucket_row(bench, label, cmd, limit))
    rows += _tree_rows(bench)
    rows.append(_open_files_row(bench))
    bench.items.extend(rows)


def _readers_row(bench, label, picks, readers, algo, limit):
    bench.progress(label)
    ids_path = bench.write_ids(f"access-{readers}", picks)
    git_s = best([cat_file_batch(bench.repo, ids_path).seconds for _ in range(bench.args.repeat)])
    times, wrong, slowest = [], 0, 0.0
    for _ in range(bench.args.repeat):
        with FreshMount(bench.repo) as mount:
            lists = []
            for k in range(readers):
                part = picks[k::readers]
                path = os.path.join(bench.workdir, f"access-paths-{k}")
                with open(path, "w") as f:
                    f.write("\n".join(os.path.join(mount.mountpoint, oid[:2], oid[2:]) for oid in part))
                lists.append(path)
            began = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", READER, path, algo], stdout=subprocess.PIPE, text=True)
                     for path in lists]
            outs = [p.communicate()[0].split() for p in procs]
            times.append(time.perf_counter() - began)
            for out in outs:
                if len(out) != 2:
                    wrong += PER_READER  # the reader failed: count its objects as wrong
                    continue
                wrong += int(out[0])
                slowest = max(slowest, float(out[1]))
    note = f"{wrong} wrong; slowest read {slowest:.2f} s (target {SLOWEST_READ} s)"
    floor = _readers_in_memory(bench, picks, readers, algo)
    if floor is not None:
        note += f"; the readers alone, over the same bytes in memory: {floor:.3f} s ({floor / git_s:.2f}x)"
    return ratio_row(label, best(times), git_s, limit, note, valid=wrong == 0 and slowest <= SLOWEST_READ)


def _readers_in_memory(bench, picks, readers, algo):
    """The same readers over the same objects as files in a directory in memory (tmpfs): what
    the row would take with a mount that cost nothing, its floor. None without /dev/shm."""
    shm = _memory_dir()
    if shm is None:
        return None
    with tempfile.TemporaryDirectory(dir=shm, prefix="gitfs-bench-") as top:
        ids = sorted(set(picks))
        out = subprocess.run(["git", "-C", bench.repo, "cat-file", "--batch"], input=("\n".join(ids) + "\n").encode(),
                             capture_output=True, text=False, check=True).stdout
        pos = 0
        for oid in ids:
            nl = out.index(b"\n", pos)
            size = int(out[pos:nl].split()[2])
            os.makedirs(os.path.join(top, oid[:2]), exist_ok=True)
            with open(os.path.join(top, oid[:2], oid[2:]), "wb") as f:
                f.write(out[nl + 1 : nl + 1 + size])
            pos = nl + 1 + size + 1
        lists = []
        for k in range(readers):
            path = os.path.join(top, f"paths-{k}")
            with open(path, "w") as f:
                f.write("\n".join(os.path.join(top, oid[:2], oid[2:]) for oid in picks[k::readers]))
            lists.append(path)
        times = []
        for _ in range(bench.args.repeat):
            began = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", READER, path, algo], stdout=subprocess.DEVNULL)
                     for path in lists]
            for p in procs:
                p.wait()
            times.append(time.perf_counter() - began)
        return best(times)


def _bucket_tools(bench):
    rg = shutil.which("rg")
    rsync = shutil.which("rsync")
    return [
        ("(11) rg -j4 " + bench.bucket_label, [rg, "-j4", "-uuu", "--no-messages", "-F", "zzqqzz-no-match"] if rg else None,
         LIMITS["buckets"]),
        ("(11) user.git.type + bytes hasher " + bench.bucket_label, [sys.executable, "-c", HASHER], LIMITS["tools"]),
        # (to a pipe: GNU tar reads no file at all when its archive is /dev/null)
        ("(11) tar c " + bench.bucket_label, ["tar", "cf", "-"], LIMITS["tools"]),
        ("(11) rsync -a " + bench.bucket_label, [rsync, "-a"] if rsync else None, LIMITS["tools"]),
    ]


def _bucket_row(bench, label, cmd, limit):
    if cmd is None:
        return Row(label, result="n/a", note="the tool is not installed")
    bench.progress(label)
    git_s = best([cat_file_batch(bench.repo, bench.ids_path).seconds for _ in range(bench.args.repeat)])
    times, problems = [], []
    for _ in range(bench.args.repeat):
        with FreshMount(bench.repo) as mount:
            paths = [os.path.join(mount.mountpoint, b) for b in bench.buckets]
            if cmd[0] == sys.executable:  # the hasher walks one directory: the mount, restricted below
                argv = [[*cmd, p] for p in paths]
            elif "rsync" in cmd[0]:
                # Into memory, so that the row times the reading, not the disk: 6,400 files of
                # 124 MiB written to the bench machine's disk took rsync 2.9 s from a warm mount,
                # 0.37 s into /dev/shm.
                target = tempfile.mkdtemp(prefix="gitfs-bench-rsync-", dir=_memory_dir())
                argv = [[*cmd, *paths, target]]
            else:
                argv = [[*cmd, *paths]]
            began = time.perf_counter()
            for one in argv:
                run = timed_stream(one, env=dict(os.environ, LC_ALL="C"), count_lines=one[0] == "tar")
                if run.status not in (0, 1):  # rg exits 1 when nothing matched
                    problems.append(run.stderr.strip().splitlines()[-1:] or [f"exit {run.status}"])
            times.append(time.perf_counter() - began)
            if "rsync" in cmd[0]:
                shutil.rmtree(target, ignore_errors=True)
    note = f"{len(bench.bucket_ids)} files" + (f"; errors: {problems[0]}" if problems else "")
    return ratio_row(label, best(times), git_s, limit, note, valid=not problems)


def _memory_dir():
    """A directory in memory (tmpfs) for files the bench writes only to throw away, if there is one."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _tree_rows(bench):
    rev = bench.args.rev or default_rev(bench.repo)
    label = f".tree/{rev.replace('/', ':')}" if rev else ".tree"
    pattern = "zzqqzz-no-match"
    rows = []
    if rev is None:
        return [Row(f"(11) grep -r {label}", result="n/a", note="no revision")]
    bench.progress(f"(11) grep -r and rg -j2 over {label}")
    git_runs = [timed_stream(["git", "-C", bench.repo, "grep", "-F", "-e", pattern, rev]) for _ in range(bench.args.repeat)]
    git_s = best([r.seconds for r in git_runs])
    rg = shutil.which("rg")
    for name, cmd in (("grep -r", ["grep", "-r", "-F", "-e", pattern]),
                      ("rg -j2", [rg, "-j2", "-uuu", "--no-messages", "-F", pattern] if rg else None)):
        if cmd is None:
            rows.append(Row(f"(11) {name} {label}", result="n/a", note="the tool is not installed"))
            continue
        times, error = [], None
        for _ in range(bench.args.repeat):
            with FreshMount(bench.repo) as mount:
                try:
                    root = tree_root(mount, rev.replace("/", ":"))
                except Absent as e:
                    error = str(e)
                    break
                run, _ = through_mount(mount, lambda: timed_stream([*cmd, root], env=dict(os.environ, LC_ALL="C")))
                if run.status > 1:
                    error = (run.stderr.strip().splitlines() or ["failed"])[-1]
                times.append(run.seconds)
        if error is not None and not times:
            rows.append(Row(f"(11) {name} {label}", result="n/a", note=error))
            continue
        rows.append(ratio_row(f"(11) {name} {label}", best(times), git_s, LIMITS["tree"],
                              f"against git grep {rev}" + (f"; error: {error}" if error else ""), valid=error is None))
    return rows


def _open_files_row(bench):
    label = f"(11) RSS with the {OPEN_FILES} largest objects open, --cache-size 64M"
    bench.progress(label)
    order = sorted(range(len(bench.objects.ids)), key=lambda i: -bench.objects.sizes[i])[:OPEN_FILES]
    with FreshMount(bench.repo, ["--cache-size", "64M"]) as mount:
        files = []
        try:
            for i in order:
                oid = bench.objects.ids[i]
                f = open(os.path.join(mount.mountpoint, oid[:2], oid[2:]), "rb", buffering=0)
                files.append(f)
                f.read()
            peak = mount.peak_memory()
        finally:
            for f in files:
                f.close()
    total = sum(bench.objects.sizes[i] for i in order)
    if not peak or not peak.get("VmHWM"):
        return Row(label, result="n/a", note="the mount's memory could not be read")
    rss = peak["VmHWM"]  # summed peaks of the daemon and its helpers
    return limit_row(label, rss, f"{rss / 1e6:.0f} MB", RSS_LIMIT, f"<= {RSS_LIMIT / 1e6:.0f} MB",
                     f"{total / 2**20:.0f} MiB of objects")


WALK_LIMIT = 2.0
WALK_RSS_LIMIT = 300e6


def figure_walk(bench):
    """(12) `grep -r` of the whole mount on a fresh mount, against git's fastest read of every
    object (`--batch-all-objects --unordered --batch`), with the RSS of the mount's processes
    after it. Minutes on a large repository: not among the default figures."""
    label = "(12) grep -r of the whole mount"
    bench.progress(label)
    cmd = ["git", "-C", bench.repo, "cat-file", "--batch-all-objects", "--unordered", "--batch"]
    git_s = best([timed_stream(cmd).seconds for _ in range(bench.args.repeat)])
    times, problems, rss = [], [], 0
    for _ in range(bench.args.repeat):
        with FreshMount(bench.repo) as mount:
            began = time.perf_counter()
            run = timed_stream(["grep", "-r", "-F", "-q", "zzqqzz-no-match", mount.mountpoint],
                               env=dict(os.environ, LC_ALL="C"))
            times.append(time.perf_counter() - began)
            if run.status not in (0, 1):
                problems.append(run.stderr.strip().splitlines()[-1:] or [f"exit {run.status}"])
            rss = max(rss, mount.resident().get("VmRSS", 0))
    note = f"{len(bench.objects.ids)} files" + (f"; errors: {problems[0]}" if problems else "")
    rows = [ratio_row(label, best(times), git_s, WALK_LIMIT, note, valid=not problems),
            limit_row("(12) RSS after it", rss, f"{rss / 1e6:.0f} MB", WALK_RSS_LIMIT,
                      f"<= {WALK_RSS_LIMIT / 1e6:.0f} MB", "VmRSS summed over the mount's processes")]
    bench.items.extend(rows)
