"""Benchmark figures: each runs our side and git's side and leaves rows for the table.

The mount figures (1) grep, (2) find, (3) mount, (4) RSS, (6) the grep again, (7) `ls -l` and the
floor are here; (5) the libraries, (8) the .tree namespace and (9) the scale run have modules of
their own (bench_libraries.py, bench_tree.py, bench_scale.py), which add their rows through Bench.
"""

import os
import sys
from dataclasses import dataclass, field

from bench_git import FIND_SIZE_LIMIT, batch_check_all, cat_file_batch
from bench_mount import (
    FloorMount,
    FreshMount,
    count_files,
    find_larger_than_1k,
    grep_buckets,
    list_long,
    parse_ls,
    requests_during,
)
from bench_table import Row, count_row, info_row, limit_row, ratio_row

SAMPLE_BUCKETS = 4  # buckets 00-03: grep
LS_BUCKETS = 16  # buckets 00-0f: ls -l
# Targets of issue 10 (ratios against git on the same work, unless said otherwise).
GREP_LIMIT = 1.0
WARM_LIMIT = 0.25
REQUESTS_LIMIT = 1.1  # kernel requests per object file during the grep
FIND_LIMIT = 3.0
LS_LIMIT = 15
RSS_LIMIT = 300e6
MOUNT_LIMIT_S = 0.5
# What the kernel asks per file read, shown one by one; the other kinds are summed after them.
FILE_REQUESTS = ("open", "read", "release", "flush", "lookup", "getattr")


@dataclass
class Comparison:
    """Our best time for some work, compared at the end with git's best time for the same work.

    Ratios are computed only once every git sample is in, so each row uses git's best run.
    """

    figure: str
    ours_s: float | None
    ours_cpu: float | None
    git_work: str  # a key of Bench.git_work: what git does for the same work
    limit: float | None  # None: shown for information, no target
    note: str = ""
    problems: list = field(default_factory=list)


@dataclass
class Samples:
    """What several runs of one workload gave: times, CPU, kernel requests, problems seen."""

    times: list = field(default_factory=list)
    cpus: list = field(default_factory=list)  # the command's and the mount's processes' together
    mount_cpus: list = field(default_factory=list)  # the mount's processes' alone
    requests: list = field(default_factory=list)  # {kind: count} per run, None if not counted
    problems: list = field(default_factory=list)

    def add(self, run, cpu, requests, error):
        self.times.append(run.seconds)
        self.cpus.append(cpu)
        self.mount_cpus.append(None if cpu is None else cpu - run.cpu)
        self.requests.append(requests)
        if error:
            self.problems.append(error)


def best(values):
    known = [v for v in values if v is not None]
    return min(known) if known else None


def merge_peaks(peaks):
    """Field-wise maximum of several MemoryWatch results."""
    merged = {}
    for peak in peaks:
        for key, value in (peak or {}).items():
            merged[key] = max(merged.get(key, 0), value)
    return merged or None


def mb(value):
    return "?" if value is None else f"{value / 1e6:.0f} MB"


def bucket_label(buckets, want):
    """"00-03" for the first `want` buckets, else the buckets a small repository has instead."""
    if buckets and int(buckets[-1], 16) < want:
        return f"00-{want - 1:02x}"
    return ",".join(buckets) if buckets else "none"


def requests_note(requests, files):
    """"N requests for F files: open a, read b, ...; other kinds" of one run."""
    total = sum(requests.values())
    shown = ", ".join(f"{k} {requests.get(k, 0)}" for k in FILE_REQUESTS)
    rest = ", ".join(f"{k} {v}" for k, v in sorted(requests.items()) if k not in FILE_REQUESTS)
    return f"{total} requests for {files} files: {shown}" + (f"; {rest}" if rest else "")


def requests_row(figure, runs, files, limit):
    """Kernel requests per object file: the worst of the runs, each kind of it in the note."""
    known = [r for r in runs if r is not None]
    if not known or not files:
        return count_row(figure, None, limit, "the mount reports no request counts" if files else "no files")
    worst = max(known, key=lambda r: sum(r.values()))
    per_file = [sum(r.values()) / files for r in known]
    note = requests_note(worst, files)
    if len(set(per_file)) > 1:
        note += f"; worst of {len(known)} runs (best {min(per_file):.3f})"
    return count_row(figure, max(per_file), limit, note)


class Bench:
    def __init__(self, args, objects, workdir):
        self.args = args
        self.repo = args.repo
        self.objects = objects
        self.workdir = workdir
        self.buckets = objects.sample_buckets(SAMPLE_BUCKETS)
        self.bucket_ids, self.bucket_bytes = objects.in_buckets(self.buckets)
        self.bucket_label = bucket_label(self.buckets, SAMPLE_BUCKETS)
        self.ids_path = self.write_ids("bucket-ids", self.bucket_ids)
        self.items = []  # Row or Comparison, in table order
        self.mount_times = []
        self.peak_rss = {}
        self.warm = None  # Samples of (6), taken on the mounts of (1)
        self.git_work = {"batch": lambda: cat_file_batch(self.repo, self.ids_path),
                         "check": lambda: batch_check_all(self.repo)}
        self.git_runs = {work: [] for work in self.git_work}

    def write_ids(self, name, ids):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write("".join(oid + "\n" for oid in ids))
        return path

    def add_git_work(self, name, run):
        """Names what git does for some work of ours; run() returns a bench_git.Run."""
        self.git_work[name] = run
        self.git_runs.setdefault(name, [])

    # git is sampled between our runs, and the best of all samples kept, so that load from other
    # processes on the machine hits both sides alike.
    def sample_git(self, work):
        self.git_runs[work].append(self.git_work[work]())

    def progress(self, text):
        print(f"... {text}", file=sys.stderr, flush=True)

    def grep_once(self, mount, samples):
        (run, cpu, error), requests = requests_during(
            mount, grep_buckets, mount, self.buckets, self.args.pattern)
        samples.add(run, cpu, requests, error)

    def find_once(self, mount, samples, expected, who):
        (run, cpu, error), requests = requests_during(mount, find_larger_than_1k, mount)
        samples.add(run, cpu, requests, error)
        if run.lines != expected:
            samples.problems.append(f"{who} counted {run.lines}, git {expected} (size > {FIND_SIZE_LIMIT})")

    # (1) grep -r over buckets 00-03, a fresh mount per run; (6) the same grep again on that mount
    def figure_grep(self):
        figures = self.args.figures
        if not self.buckets:
            self.items.append(Row("(1) grep -r (mount)", result="n/a", note="the repository has no objects"))
            return
        self.progress("(1) grep -r through fresh mounts" + (", (6) and again on each" if "warm" in figures else ""))
        cold, warm, peaks = Samples(), Samples(), []
        for run_number in range(self.args.repeat):
            self.sample_git("batch")
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                self.grep_once(mount, cold)
                if "warm" in figures:
                    self.grep_once(mount, warm)
                peaks.append(mount.peak_memory())
                if run_number == 0:
                    seen, find_error = count_files(mount, self.buckets)
                    if find_error or seen != len(self.bucket_ids):
                        cold.problems.append(f"{seen} files listed in {self.bucket_label}, git has {len(self.bucket_ids)}")
        self.peak_rss["grep"] = merge_peaks(peaks)
        self.warm = warm if "warm" in figures else None
        if "grep" not in figures:
            return
        note = f"{len(self.bucket_ids)} files, {self.bucket_bytes / 2**20:.0f} MiB; git output to /dev/null"
        self.items.append(Comparison(f"(1) grep -r {self.bucket_label} (mount)", best(cold.times), best(cold.cpus),
                                     "batch", GREP_LIMIT, note, cold.problems))
        self.items.append(requests_row("(1) kernel requests per object file", cold.requests, len(self.bucket_ids),
                                       REQUESTS_LIMIT))

    def figure_warm(self):
        if self.warm is None:
            return  # no objects: (1) says so
        runs = [r for r in self.warm.requests if r is not None]
        note = "the kernel keeps the pages of the first grep"
        if runs:
            worst = max(runs, key=lambda r: sum(r.values()))
            note = (f"{sum(worst.values()) / len(self.bucket_ids):.3f} requests per file ("
                    + requests_note(worst, len(self.bucket_ids)) + ")")
        mount_cpu = best(self.warm.mount_cpus)
        if mount_cpu is not None:
            note += f"; the mount's processes used {mount_cpu:.2f} s of CPU meanwhile (best run)"
        self.items.append(Comparison(f"(6) grep -r {self.bucket_label} again, same mount", best(self.warm.times),
                                     best(self.warm.cpus), "batch", WARM_LIMIT, note, self.warm.problems))

    # (2) find -type f -size +1k over every object, a fresh mount per run
    def figure_find(self):
        self.progress("(2) find -size +1k through fresh mounts")
        expected = self.objects.count_larger_than(FIND_SIZE_LIMIT)
        samples, peaks = Samples(), []
        for _ in range(self.args.repeat):
            self.sample_git("check")
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                self.find_once(mount, samples, expected, "find")
                peaks.append(mount.peak_memory())
        self.peak_rss["find"] = merge_peaks(peaks)
        note = f"{expected} of {len(self.objects.ids)} objects > 1 KiB" + ("" if samples.problems else ", count equal to git's")
        note += self.readdir_note(samples)
        self.items.append(Comparison("(2) find -size +1k (mount)", best(samples.times), best(samples.cpus), "check",
                                     FIND_LIMIT, note, samples.problems))

    @staticmethod
    def readdir_note(samples):
        runs = [r for r in samples.requests if r is not None]
        if not runs:
            return ""
        worst = max(runs, key=lambda r: sum(r.values()))
        return f"; {sum(worst.values())} requests ({', '.join(f'{k} {v}' for k, v in sorted(worst.items()))})"

    # The floor: (1) and (2) through a pyfuse3 filesystem that serves git's answers from memory,
    # once plain and once with the protocol's levers that gitfs uses
    def figure_floor(self):
        self.progress("floor: grep -r and find through an in-memory pyfuse3 filesystem, plain and with levers")
        expected = self.objects.count_larger_than(FIND_SIZE_LIMIT)
        grep = {False: Samples(), True: Samples()}
        find = {False: Samples(), True: Samples()}
        again, facts = Samples(), {}
        for _ in range(self.args.repeat):
            self.sample_git("batch")
            self.sample_git("check")
            for levers in (False, True):
                if self.buckets:
                    with FloorMount(self.repo, self.ids_path, levers) as mount:
                        self.grep_once(mount, grep[levers])
                        if levers:
                            self.grep_once(mount, again)
                            facts = mount.status() or {}
                with FloorMount(self.repo, self.ids_path, levers) as mount:
                    self.find_once(mount, find[levers], expected, "floor find")
        files = len(self.bucket_ids)
        notes = {False: "open/read/release per file, 4 KiB st_blksize, new attributes per entry",
                 True: self.levers_note(facts)}
        for levers, name in ((False, "plain"), (True, "levers")):
            if not self.buckets:
                continue
            self.items.append(Comparison(f"    floor, {name}: grep -r {self.bucket_label}", best(grep[levers].times),
                                         best(grep[levers].cpus), "batch", None, notes[levers], grep[levers].problems))
            self.items.append(requests_row(f"    floor, {name}: requests per object file", grep[levers].requests,
                                           files, None))
        if self.buckets:
            runs = [r for r in again.requests if r is not None]
            note = f"{max(sum(r.values()) for r in runs) / files:.3f} requests per file" if runs else ""
            self.items.append(Comparison("    floor, levers: grep again, same mount", best(again.times),
                                         best(again.cpus), "batch", None, note, again.problems))
        for levers, name in ((False, "plain"), (True, "levers")):
            note = ("count equal to git's" if not find[levers].problems else "") + self.readdir_note(find[levers])
            self.items.append(Comparison(f"    floor, {name}: find -size +1k", best(find[levers].times),
                                         best(find[levers].cpus), "check", None, note.lstrip("; "),
                                         find[levers].problems))

    @staticmethod
    def levers_note(facts):
        levers = facts.get("levers") or {}
        used = [text for key, text in (("no_open", "no OPEN/RELEASE (open: ENOSYS)"),
                                       ("push", "page-cache push ahead of a reader"),
                                       ("big_blocks", "1 MiB directory st_blksize"),
                                       ("reuse_attrs", "one attributes object per readdir"),
                                       ("not_supported", "ENOTSUP outside user.*")) if levers.get(key)]
        if levers and not levers.get("no_open"):
            used.append("no-open unavailable: pyfuse3 lacks the read-by-inode patch")
        pushes = facts.get("read_ahead") or {}
        if pushes:
            used.append(f"{pushes.get('pushed', 0)} objects pushed, {pushes.get('push_refused', 0)} refused (last run)")
        return ", ".join(used)

    # (3) time from `gitfs mount` to a live mount
    def figure_mount(self):
        if not self.mount_times:
            self.progress("(3) mount time")
            for _ in range(self.args.repeat):
                with FreshMount(self.repo) as mount:
                    self.mount_times.append(mount.mount_seconds)
        worst, fastest = max(self.mount_times), min(self.mount_times)
        note = f"worst of {len(self.mount_times)} mounts (best {fastest:.3f} s); `gitfs mount` exit to live mount"
        self.items.append(limit_row("(3) mount to live", worst, f"{worst:.3f} s", MOUNT_LIMIT_S, "< 0.5 s", note,
                                    strict=True))

    # (4) peak RSS of the mount daemon during (1) and (2)
    def figure_rss(self):
        if not self.peak_rss:
            self.figure_grep()
            self.figure_find()
        known = {k: v for k, v in self.peak_rss.items() if v}
        if not known:
            self.items.append(Row("(4) peak RSS (mount)", target="<= 300 MB", result="n/a", note="daemon pid not found"))
            return
        peak = max(v["VmHWM"] for v in known.values())
        git_all = self.git_runs["batch"] + self.git_runs["check"]
        git_peak = max((run.max_rss for run in git_all), default=None)
        row = limit_row("(4) peak RSS (mount)", peak, mb(peak), RSS_LIMIT, "<= 300 MB")
        if git_peak:
            row.git, row.ratio = mb(git_peak), f"{peak / git_peak:.2f}"
        processes = max(v.get("processes", 1) for v in known.values())
        row.note = f"VmHWM summed over the mount's {processes} process(es) (anon + mmap'd packs): " + ", ".join(
            f"{k} {mb(v['VmHWM'])} (peak anon {mb(v.get('RssAnon'))}, file {mb(v.get('RssFile'))})"
            for k, v in known.items())
        if git_peak:
            row.note += "; git: cat-file's own peak"
        self.items.append(row)

    # (7) ls -l of buckets 00-0f, a fresh mount per run
    def figure_ls(self):
        buckets = self.objects.sample_buckets(LS_BUCKETS)
        label = bucket_label(buckets, LS_BUCKETS)
        if not buckets:
            self.items.append(Row("(7) ls -l (mount)", result="n/a", note="the repository has no objects"))
            return
        self.progress(f"(7) ls -l {label} through fresh mounts")
        ids, _ = self.objects.in_buckets(buckets)
        ids_path = self.write_ids("ls-ids", ids)
        self.add_git_work("ls", lambda: cat_file_batch(self.repo, ids_path, check=True))
        samples, floor = Samples(), Samples()
        for _ in range(self.args.repeat):
            self.sample_git("ls")
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                self.ls_once(mount, samples, buckets, ids)
            if "floor" in self.args.figures:
                with FloorMount(self.repo, self.ids_path, levers=True) as mount:
                    self.ls_once(mount, floor, buckets, ids)
        note = f"{len(ids)} entries, sizes equal to git's" if not samples.problems else f"{len(ids)} entries"
        note += "; git: --batch-check on the same ids" + self.readdir_note(samples)
        self.items.append(Comparison(f"(7) ls -l {label} (mount)", best(samples.times), best(samples.cpus), "ls",
                                     LS_LIMIT, note, samples.problems))
        if floor.times:
            self.items.append(Comparison(f"    floor, levers: ls -l {label}", best(floor.times), best(floor.cpus), "ls",
                                         None, self.readdir_note(floor).lstrip("; "), floor.problems))

    def ls_once(self, mount, samples, buckets, ids):
        dirs = [os.path.join(mount.mountpoint, b) for b in buckets]
        out_path = os.path.join(self.workdir, "ls-output")
        (run, cpu, error), requests = requests_during(mount, list_long, mount, dirs, out_path)
        samples.add(run, cpu, requests, error)
        listed, _ = parse_ls(out_path, single=dirs[0] if len(dirs) == 1 else None)
        samples.problems += self.listing_problems(listed, mount.mountpoint, ids)

    def listing_problems(self, listed, mountpoint, ids):
        """What differs between `ls -l` output and git's ids and sizes."""
        sizes = dict(zip(self.objects.ids, self.objects.sizes))
        seen = {b[-2:] + name: size for b, entries in listed.items() if b.startswith(mountpoint)
                for name, size in entries.items()}
        wrong = [oid for oid in ids if seen.get(oid) != sizes[oid]]
        extra = len(seen.keys() - set(ids))
        if not wrong and not extra:
            return []
        first = f" (first {wrong[0]})" if wrong else ""
        return [f"ls -l: {len(wrong)} of git's {len(ids)} entries missing or of another size{first}, {extra} extra"]

    # -- the table -------------------------------------------------------------

    def rows(self):
        return [self.finish(item) if isinstance(item, Comparison) else item for item in self.items]

    def finish(self, c):
        runs = self.git_runs[c.git_work]
        git_s = best(run.seconds for run in runs)
        git_cpu = best(run.cpu for run in runs)
        note = c.note
        if c.ours_cpu is not None and git_cpu:
            cpu = f"cpu {c.ours_cpu:.2f} s vs {git_cpu:.2f} s ({c.ours_cpu / git_cpu:.2f})"
            note = f"{note}; {cpu}" if note else cpu
        if c.limit is None:
            row = info_row(c.figure, c.ours_s, git_s, note)
            if c.problems:
                row.result, row.note = "FAIL", "; ".join(dict.fromkeys(c.problems))
            return row
        row = ratio_row(c.figure, c.ours_s, git_s, c.limit, note, valid=not c.problems)
        if c.problems:
            row.result = "FAIL"
            row.note = "; ".join(dict.fromkeys(c.problems))
        return row
