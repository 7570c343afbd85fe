"""Benchmark figure (9), --synthetic N: the mount at scale, N blobs against the bench repository.

The same sequence runs on a fresh mount of each repository: mount; `ls -l` of buckets 00-0f
(cost per entry); `find -type f -size +1k` over every bucket (the listing; count checked) and
the RSS of all the mount's processes after it; N/1000 (at least one) random objects read
(`xargs cat`, bytes checked; cost per read) and the RSS after them. git does the same work
beside it (`--batch-check` on the listed ids, `cat-file --batch` on the read ones), so the cost
of each repository's objects themselves shows too. Issue 10: at 10M objects the mount is live in
under a second, all its processes hold at most 300 MB, and an `ls -l` entry and a random read
cost at most 1.5x what they cost on the 419k-object repository.
"""

import os
import random
import subprocess
from dataclasses import dataclass, field

from bench_figures import LS_BUCKETS, RSS_LIMIT, Samples, best, mb
from bench_git import FIND_SIZE_LIMIT, GitError, cat_file_batch
from bench_mount import FreshMount, find_larger_than_1k, list_long, parse_ls, read_files
from bench_synthetic import synthetic_repository
from bench_table import Row, limit_row

MOUNT_LIMIT_S = 1.0
SCALE_LIMIT = 1.5
READS_PER = 1000  # one random read per this many objects
SEED = 10


@dataclass
class Census:
    """What the scale sequence needs of a repository, from one pass over git's object list."""

    objects: int = 0
    larger: int = 0  # objects > FIND_SIZE_LIMIT bytes: what find -size +1k counts
    listed: dict = field(default_factory=dict)  # id -> size of buckets 00-0f
    picked: list = field(default_factory=list)  # (id, size) read at random, in reading order


def census(repo, ls_buckets, reads):
    """Streams `git cat-file --batch-all-objects --batch-check` (10M ids do not fit a list well)."""
    chosen, rng, result = set(ls_buckets), random.Random(SEED), Census()
    proc = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch-all-objects",
                             "--batch-check=%(objectname) %(objectsize)"], stdout=subprocess.PIPE)
    for line in proc.stdout:
        oid, size = line.split()
        oid, size = oid.decode(), int(size)
        if size > FIND_SIZE_LIMIT:
            result.larger += 1
        if oid[:2] in chosen:
            result.listed[oid] = size
        # Reservoir sampling: `reads` objects uniformly at random, the same ones every run.
        if len(result.picked) < reads:
            result.picked.append((oid, size))
        else:
            slot = rng.randrange(result.objects + 1)
            if slot < reads:
                result.picked[slot] = (oid, size)
        result.objects += 1
    if proc.wait() != 0:
        raise GitError(f"git cat-file --batch-all-objects in {repo} failed")
    random.Random(SEED).shuffle(result.picked)
    return result


@dataclass
class Scale:
    """One repository's figures, best of the runs (RSS: the highest)."""

    name: str
    census: Census
    mounts: list = field(default_factory=list)
    ls: Samples = field(default_factory=Samples)
    find: Samples = field(default_factory=Samples)
    reads: Samples = field(default_factory=Samples)
    rss_listed: list = field(default_factory=list)
    rss_read: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def per_entry(self):
        return _per(best(self.ls.times), len(self.census.listed))

    def per_read(self):
        return _per(best(self.reads.times), len(self.census.picked))


def _per(seconds, count):
    return None if seconds is None or not count else seconds / count


def us(value):
    return "-" if value is None else f"{value * 1e6:.1f} us"


def figure_scale(bench):
    n = bench.args.synthetic
    path, built = synthetic_repository(bench.args.work, n, bench.progress)
    built_note = f"built in {built:.0f} s" if built is not None else "an earlier build, kept"
    packs = [p for p in os.listdir(os.path.join(path, "objects", "pack")) if p.endswith(".pack")]
    bench.items.append(Row(f"(9) synthetic repository ({n} blobs)", result="info",
                           note=f"{path}: {len(packs)} packs + multi-pack-index, {built_note}"))
    main = measure(bench, bench.repo, os.path.basename(os.path.abspath(bench.repo)), len(bench.objects.ids), "main")
    big = measure(bench, path, f"synthetic {n}", n, "synthetic")
    add_rows(bench, main, big)


def measure(bench, repo, name, objects, tag):
    """The sequence on fresh mounts of repo, which holds `objects` objects (tag: its files' names)."""
    buckets = [f"{b:02x}" for b in range(LS_BUCKETS)]
    bench.progress(f"(9) scale sequence on {name}")
    c = census(repo, buckets, max(1, objects // READS_PER))
    scale = Scale(name, c)
    ls_ids = bench.write_ids(f"scale-ls-{tag}", sorted(c.listed))
    read_ids = bench.write_ids(f"scale-read-{tag}", [oid for oid, _ in c.picked])
    paths = os.path.join(bench.workdir, f"scale-paths-{tag}")
    with open(paths, "wb") as f:
        f.write(b"".join(f"{oid[:2]}/{oid[2:]}\0".encode() for oid, _ in c.picked))
    bench.add_git_work(f"ls {name}", lambda: cat_file_batch(repo, ls_ids, check=True))
    bench.add_git_work(f"read {name}", lambda: cat_file_batch(repo, read_ids))
    out_path = os.path.join(bench.workdir, "scale-ls")
    for _ in range(bench.args.repeat):
        bench.sample_git(f"ls {name}")
        bench.sample_git(f"read {name}")
        with FreshMount(repo) as mount:
            scale.mounts.append(mount.mount_seconds)
            one_run(mount, scale, buckets, out_path, paths)
    return scale


def one_run(mount, scale, buckets, out_path, paths):
    c = scale.census
    dirs = [os.path.join(mount.mountpoint, b) for b in buckets if os.path.isdir(os.path.join(mount.mountpoint, b))]
    if dirs:
        run, cpu, error = list_long(mount, dirs, out_path)
        scale.ls.add(run, cpu, None, error)
        listed, _ = parse_ls(out_path, single=dirs[0] if len(dirs) == 1 else None)
        seen = {d[-2:] + name: size for d, entries in listed.items() for name, size in entries.items()}
        if seen != c.listed:
            scale.problems.append(f"{scale.name}: ls -l listed {len(seen)} entries, git {len(c.listed)} "
                                  "(or sizes differ)")
    run, cpu, error = find_larger_than_1k(mount)
    scale.find.add(run, cpu, None, error)
    if run.lines != c.larger:
        scale.problems.append(f"{scale.name}: find counted {run.lines}, git {c.larger}")
    scale.rss_listed.append(mount.resident())
    run, cpu, error = read_files(mount, mount.mountpoint, paths, count=True)
    scale.reads.add(run, cpu, None, error)
    expected = sum(size for _, size in c.picked)
    if run.bytes != expected:
        scale.problems.append(f"{scale.name}: read {run.bytes} bytes of random objects, git {expected}")
    scale.rss_read.append(mount.resident())
    scale.problems += [f"{scale.name}: {e}" for e in scale.ls.problems + scale.find.problems + scale.reads.problems]
    scale.ls.problems, scale.find.problems, scale.reads.problems = [], [], []


def git_per(bench, work, count):
    return _per(best(run.seconds for run in bench.git_runs[work]), count)


def add_rows(bench, main, big):
    problems = main.problems + big.problems
    worst = max(big.mounts)
    bench.items.append(limit_row(f"(9) mount to live, {big.name}", worst, f"{worst:.3f} s", MOUNT_LIMIT_S, "< 1 s",
                                 f"worst of {len(big.mounts)} (best {min(big.mounts):.3f} s); "
                                 f"{main.name}: worst {max(main.mounts):.3f} s", strict=True))
    for label, attr, after in (("listing every bucket", "rss_listed", "find -size +1k over every bucket"),
                               (f"{len(big.census.picked)} random reads", "rss_read", "the random reads")):
        big_rss, main_rss = _highest(getattr(big, attr)), _highest(getattr(main, attr))
        note = (f"VmRSS summed over the daemon and its helpers after {after} (anon {mb(big_rss.get('RssAnon'))}, "
                f"file {mb(big_rss.get('RssFile'))}; PSS {mb(big_rss.get('Pss'))}); "
                f"{main.name}: {mb(main_rss.get('VmRSS'))} (PSS {mb(main_rss.get('Pss'))})")
        row = limit_row(f"(9) RSS after {label}, {big.name}", big_rss.get("VmRSS"), mb(big_rss.get("VmRSS")),
                        RSS_LIMIT, "<= 300 MB", note)
        bench.items.append(fail_on(row, problems))
    for one, many, per, work, count in (
            ("ls -l entry", "entries", Scale.per_entry, "ls", lambda s: len(s.census.listed)),
            ("random read", "objects read in random order", Scale.per_read, "read", lambda s: len(s.census.picked))):
        for scale in (main, big):
            ours, git = per(scale), git_per(bench, f"{work} {scale.name}", count(scale))
            ratio = f"{ours / git:.2f}" if ours and git else "-"
            bench.items.append(Row(f"(9) per {one}, {scale.name}", us(ours), us(git), ratio, "-",
                                   "info" if ours is not None else "n/a", f"{count(scale)} {many}"))
        bench.items.append(fail_on(scale_row(f"(9) per {one}: {big.name} / {main.name}", per(big), per(main)),
                                   problems))


def scale_row(figure, big, main):
    if big is None or not main:
        return Row(figure, us(big), "-", "-", f"<= {SCALE_LIMIT}", "n/a")
    ratio = big / main
    return Row(figure, us(big), "-", f"{ratio:.2f}", f"<= {SCALE_LIMIT}", "PASS" if ratio <= SCALE_LIMIT else "MISS",
               f"against {us(main)} on the bench repository")


def fail_on(row, problems):
    if problems:
        row.result, row.note = "FAIL", "; ".join(dict.fromkeys(problems))
    return row


def _highest(samples):
    return max(samples, key=lambda s: s.get("VmRSS", 0)) if samples else {}
