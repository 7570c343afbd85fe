"""Benchmark figures (1)-(5): each runs our side and git's side and leaves rows for the table."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from bench_git import FIND_SIZE_LIMIT, batch_check_all, cat_file_batch
from bench_mount import FloorMount, FreshMount, count_files, find_larger_than_1k, grep_buckets
from bench_table import Row, info_row, limit_row, ratio_row

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_BUCKETS = 4  # buckets 00-03
RSS_LIMIT = 300e6
MOUNT_LIMIT_S = 0.5
OPEN_LIMIT_MS = 50


@dataclass
class Comparison:
    """Our best time for some work, compared at the end with git's best time for the same work.

    Ratios are computed only once every git sample is in, so each row uses git's best run.
    """

    figure: str
    ours_s: float | None
    ours_cpu: float | None
    git_work: str  # "batch" (cat-file --batch over the sample ids) or "check" (--batch-check all)
    limit: float | None  # None: shown for information, no target
    note: str = ""
    problems: list = field(default_factory=list)


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


class Bench:
    def __init__(self, args, objects, workdir):
        self.args = args
        self.repo = args.repo
        self.objects = objects
        self.buckets = objects.sample_buckets(SAMPLE_BUCKETS)
        self.bucket_ids, self.bucket_bytes = objects.in_buckets(self.buckets)
        low = self.buckets and int(self.buckets[-1], 16) < SAMPLE_BUCKETS
        self.bucket_label = "00-03" if low or not self.buckets else ",".join(self.buckets)
        self.ids_path = os.path.join(workdir, "bucket-ids")
        with open(self.ids_path, "w") as f:
            f.write("".join(oid + "\n" for oid in self.bucket_ids))
        self.items = []  # Row or Comparison, in table order
        self.mount_times = []
        self.peak_rss = {}
        self.git_runs = {"batch": [], "check": []}

    # git is sampled between our runs, and the best of all samples kept, so that load from other
    # processes on the machine hits both sides alike.
    def sample_git(self, work):
        run = cat_file_batch(self.repo, self.ids_path) if work == "batch" else batch_check_all(self.repo)
        self.git_runs[work].append(run)

    def progress(self, text):
        print(f"... {text}", file=sys.stderr, flush=True)

    # (1) grep -r over buckets 00-03, a fresh mount per run
    def figure_grep(self):
        if not self.buckets:
            self.items.append(Row("(1) grep -r (mount)", result="n/a", note="the repository has no objects"))
            return
        self.progress("(1) grep -r through fresh mounts")
        times, cpus, peaks, problems = [], [], [], []
        for run_number in range(self.args.repeat):
            self.sample_git("batch")
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                run, cpu, error = grep_buckets(mount, self.buckets, self.args.pattern)
                peaks.append(mount.peak_memory())
                if error:
                    problems.append(error)
                if run_number == 0:
                    seen, find_error = count_files(mount, self.buckets)
                    if find_error or seen != len(self.bucket_ids):
                        problems.append(f"{seen} files listed in {self.bucket_label}, git has {len(self.bucket_ids)}")
            times.append(run.seconds)
            cpus.append(cpu)
        self.peak_rss["grep"] = merge_peaks(peaks)
        note = f"{len(self.bucket_ids)} files, {self.bucket_bytes / 2**20:.0f} MiB; git output to /dev/null"
        self.items.append(Comparison(f"(1) grep -r {self.bucket_label} (mount)", best(times), best(cpus),
                                     "batch", 1.5, note, problems))

    # (2) find -type f -size +1k over every object, a fresh mount per run
    def figure_find(self):
        self.progress("(2) find -size +1k through fresh mounts")
        expected = self.objects.count_larger_than(FIND_SIZE_LIMIT)
        times, cpus, peaks, problems = [], [], [], []
        for _ in range(self.args.repeat):
            self.sample_git("check")
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                run, cpu, error = find_larger_than_1k(mount)
                peaks.append(mount.peak_memory())
            times.append(run.seconds)
            cpus.append(cpu)
            if error:
                problems.append(error)
            if run.lines != expected:
                problems.append(f"find counted {run.lines}, git {expected} (size > {FIND_SIZE_LIMIT})")
        self.peak_rss["find"] = merge_peaks(peaks)
        note = f"{expected} of {len(self.objects.ids)} objects > 1 KiB" + ("" if problems else ", count equal to git's")
        self.items.append(Comparison("(2) find -size +1k (mount)", best(times), best(cpus), "check", 4, note, problems))

    # The floor: (1) and (2) through a pyfuse3 filesystem that serves git's answers from memory
    def figure_floor(self):
        self.progress("floor: grep -r and find through an in-memory pyfuse3 filesystem")
        expected = self.objects.count_larger_than(FIND_SIZE_LIMIT)
        grep_times, grep_cpus, find_times, find_cpus, problems = [], [], [], [], []
        for _ in range(self.args.repeat):
            if self.buckets:
                with FloorMount(self.repo, self.ids_path) as mount:
                    run, cpu, error = grep_buckets(mount, self.buckets, self.args.pattern)
                grep_times.append(run.seconds)
                grep_cpus.append(cpu)
                problems += [error] if error else []
            with FloorMount(self.repo, self.ids_path) as mount:
                run, cpu, error = find_larger_than_1k(mount)
            find_times.append(run.seconds)
            find_cpus.append(cpu)
            problems += [error] if error else []
            if run.lines != expected:
                problems.append(f"floor find counted {run.lines}, git {expected}")
        note = "pyfuse3 serving git's sizes and bytes from memory: what per-request cost alone allows"
        if grep_times:
            self.items.append(Comparison(f"    floor: grep -r {self.bucket_label}", best(grep_times), best(grep_cpus),
                                         "batch", None, note, problems))
        self.items.append(Comparison("    floor: find -size +1k", best(find_times), best(find_cpus), "check", None,
                                     note, problems))

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

    # (5) the libraries alone
    def figure_odb(self):
        self.progress("(5) odb library")
        result = self.run_library(sys.executable, "odb")
        if "error" in result:
            self.items.append(Row("(5) odb", result="n/a", note=result["error"]))
            return
        total = (len(self.objects.ids), sum(self.objects.sizes))
        read = (result["read_objects"], result["read_bytes"])
        header = (result["header_objects"], result["header_bytes"])
        read_problems = [] if read == (len(self.bucket_ids), self.bucket_bytes) else [
            f"read {read[1]} bytes, git {self.bucket_bytes}"]
        header_problems = [] if header == total else [f"{header[0]} objects/{header[1]} bytes, git {total[0]}/{total[1]}"]
        self.items.append(Comparison(f"(5) odb read {self.bucket_label}", result["read_s"], result["read_cpu_s"],
                                     "batch", 1.3, "bytes equal to git's", read_problems))
        self.items.append(Comparison("(5) odb read_header all", result["header_s"], result["header_cpu_s"],
                                     "check", 5, "count and sizes equal to git's", header_problems))
        open_ms = result["open_first_s"] * 1000
        note = f"first open in a fresh process, best of {self.args.repeat}; a reopen: {result['open_s'] * 1000:.1f} ms"
        self.items.append(limit_row("(5) odb.open", open_ms, f"{open_ms:.1f} ms", OPEN_LIMIT_MS, "< 50 ms", note,
                                    strict=True))
        for other in ("pygit2", "dulwich"):
            self.figure_other_library(other)

    def figure_other_library(self, name):
        python = self.python_with(name)
        if python is None:
            self.items.append(Row(f"(5) {name}", result="n/a", note="not importable"))
            return
        self.progress(f"(5) {name}")
        result = self.run_library(python, name)
        if "error" in result:
            self.items.append(Row(f"(5) {name}", result="n/a", note=result["error"]))
            return
        self.items.append(Comparison(f"(5) {name} read {self.bucket_label}", result["read_s"],
                                     result.get("read_cpu_s"), "batch", None))
        if "header_s" in result:
            self.items.append(Comparison(f"(5) {name} read_header all", result["header_s"],
                                         result.get("header_cpu_s"), "check", None))

    def python_with(self, module):
        for python in (sys.executable, self.args.other_python):
            if python and os.path.exists(python):
                probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
                if probe.returncode == 0:
                    return python
        return None

    def run_library(self, python, backend):
        """Best of --repeat fresh worker processes, each run after a git sample of both kinds."""
        merged = {}
        for _ in range(self.args.repeat):
            self.sample_git("batch")
            self.sample_git("check")
            result = self.run_library_once(python, backend)
            if "error" in result:
                return result
            for key, value in result.items():
                timed = key.endswith("_s") and key in merged
                merged[key] = min(merged[key], value) if timed else merged.get(key, value)
        return merged

    def run_library_once(self, python, backend):
        cmd = [python, os.path.join(HERE, "bench_library.py"), backend, os.path.abspath(self.repo),
               self.ids_path, "1"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            return {"error": lines[-1]}

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
