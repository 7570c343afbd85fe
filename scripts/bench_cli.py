"""scripts/bench: time gitfs and odb against git on one repository and print one table (issue 5)."""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

from bench_git import FIND_SIZE_LIMIT, GitError, batch_check_all, cat_file_batch, describe_repository, git, list_objects
from bench_mount import FreshMount, MountError, count_files, find_larger_than_1k, grep_buckets
from bench_prepare import prepare
from bench_table import Row, info_row, limit_row, ratio_row, render, seconds

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES = {"1": "grep", "2": "find", "3": "mount", "4": "rss", "5": "odb"}
SAMPLE_BUCKETS = 4  # buckets 00-03
DEFAULT_PATTERN = "gitfs-bench-pattern-that-matches-nothing"
OTHER_PYTHON = "/work/bench/venv/bin/python"
MIB = 2**20


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Time gitfs (grep -r, find -size, mount, RSS) and the odb library against git.",
    )
    parser.add_argument("repo", metavar="REPO", help="repository to measure (bare or not); with --prepare, the copy to create")
    parser.add_argument("--prepare", metavar="SRC", help="first create REPO from SRC: bare copy, repack -a -d --max-pack-size, multi-pack-index write")
    parser.add_argument("--ref", help="with --prepare: copy only this branch or tag's history (default: every ref)")
    parser.add_argument("--max-pack-size", default="100m", help="with --prepare: git repack --max-pack-size (default 100m)")
    parser.add_argument("--only", default="1,2,3,4,5", help="figures to run, by number or name: 1 grep, 2 find, 3 mount, 4 rss, 5 odb; 'prepare' to stop after --prepare")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN, help="grep pattern (default matches nothing, so every byte is read)")
    parser.add_argument("--other-python", default=OTHER_PYTHON, help=f"interpreter with pygit2/dulwich, kept out of the project venv (default {OTHER_PYTHON})")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.figures = set()
    for item in args.only.split(","):
        item = item.strip()
        if item == "prepare":
            continue
        name = FIGURES.get(item, item)
        if name not in FIGURES.values():
            parser.error(f"--only: unknown figure {item!r}")
        args.figures.add(name)
    return args


def machine_line():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB RAM, {cpu}, Linux {platform.release()}"


def page_cache_line(objects_dir):
    """How much of the pack data is already in the page cache; nothing is dropped by the bench."""
    pack_dir = os.path.join(objects_dir, "pack")
    packs = [os.path.join(pack_dir, n) for n in os.listdir(pack_dir) if n.endswith(".pack")] if os.path.isdir(pack_dir) else []
    if not packs:
        return "no packs"
    proc = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *packs], capture_output=True, text=True)
    if proc.returncode != 0:
        return "unknown (fincore unavailable)"
    resident = total = 0
    for line in proc.stdout.splitlines():
        res, size = line.split()
        resident, total = resident + int(res), total + int(size)
    # fincore counts whole pages, so a small file can look more than fully resident.
    return f"{min(resident / max(total, 1), 1):.0%} of {total / MIB:.0f} MiB of packs resident before the runs (nothing dropped)"


def print_header(repo, objects, bench):
    counts, objects_dir = describe_repository(repo)
    objects_dir = os.path.join(repo, objects_dir)
    midx = os.path.exists(os.path.join(objects_dir, "pack", "multi-pack-index"))
    print(f"repository: {os.path.abspath(repo)} ({objects.object_format})")
    print(f"  {len(objects.ids)} objects: {counts.get('in-pack', '?')} packed in {counts.get('packs', '?')} packs"
          f"{' + multi-pack-index' if midx else ''}, {counts.get('count', '?')} loose")
    print(f"  buckets {bench.bucket_label}: {len(bench.bucket_ids)} objects, {bench.bucket_bytes / MIB:.1f} MiB inflated")
    print(f"machine: {machine_line()}")
    print(f"software: {git(repo, 'version').strip()}, Python {platform.python_version()}")
    print(f"page cache: {page_cache_line(objects_dir)}")
    with open("/proc/loadavg") as f:
        print(f"load average: {' '.join(f.read().split()[:3])} (other processes share the CPUs)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(flush=True)


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
        self.rows = []
        self.mount_times = []
        self.peak_rss = {}
        self.git_batch_runs, self.git_check_runs = [], []

    # git is sampled between our runs, and the best of all samples kept, so that load from other
    # processes on the machine hits both sides alike.
    def git_batch(self, sample=True):
        if sample or not self.git_batch_runs:
            self.git_batch_runs.append(cat_file_batch(self.repo, self.ids_path))
        return min(run.seconds for run in self.git_batch_runs)

    def git_check(self, sample=True):
        if sample or not self.git_check_runs:
            self.git_check_runs.append(batch_check_all(self.repo))
        return min(run.seconds for run in self.git_check_runs)

    def progress(self, text):
        print(f"... {text}", file=sys.stderr, flush=True)

    # (1) grep -r over buckets 00-03, a fresh mount per run
    def figure_grep(self):
        if not self.buckets:
            self.rows.append(Row("(1) grep -r (mount)", result="n/a", note="the repository has no objects"))
            return
        self.progress("(1) grep -r through fresh mounts")
        times, peaks, problems = [], [], []
        for run in range(self.args.repeat):
            self.git_batch()
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                elapsed, error = grep_buckets(mount, self.buckets, self.args.pattern)
                peaks.append(mount.peak_memory())
                if error:
                    problems.append(error)
                if run == 0:
                    seen, find_error = count_files(mount, self.buckets)
                    if find_error or seen != len(self.bucket_ids):
                        problems.append(f"{seen} files listed in {self.bucket_label}, git has {len(self.bucket_ids)}")
            times.append(elapsed)
        self.peak_rss["grep"] = merge_peaks(peaks)
        note = f"{len(self.bucket_ids)} files, {self.bucket_bytes / MIB:.0f} MiB; git output to /dev/null"
        row = ratio_row(f"(1) grep -r {self.bucket_label} (mount)", min(times), self.git_batch(False), 1.5, note, valid=not problems)
        self.add(row, problems)

    # (2) find -type f -size +1k over every object, a fresh mount per run
    def figure_find(self):
        self.progress("(2) find -size +1k through fresh mounts")
        expected = self.objects.count_larger_than(FIND_SIZE_LIMIT)
        times, peaks, problems = [], [], []
        for _ in range(self.args.repeat):
            self.git_check()
            with FreshMount(self.repo) as mount:
                self.mount_times.append(mount.mount_seconds)
                elapsed, found, error = find_larger_than_1k(mount)
                peaks.append(mount.peak_memory())
            times.append(elapsed)
            if error:
                problems.append(error)
            if found != expected:
                problems.append(f"find counted {found}, git {expected} (size > {FIND_SIZE_LIMIT})")
        self.peak_rss["find"] = merge_peaks(peaks)
        note = f"{expected} of {len(self.objects.ids)} objects > 1 KiB" + ("" if problems else ", count equal to git's")
        self.add(ratio_row("(2) find -size +1k (mount)", min(times), self.git_check(False), 4, note, valid=not problems), problems)

    # (3) time from `gitfs mount` to a live mount
    def figure_mount(self):
        if not self.mount_times:
            self.progress("(3) mount time")
            for _ in range(self.args.repeat):
                with FreshMount(self.repo) as mount:
                    self.mount_times.append(mount.mount_seconds)
        worst, best = max(self.mount_times), min(self.mount_times)
        note = f"worst of {len(self.mount_times)} mounts (best {best:.3f} s); `gitfs mount` exit to live mount"
        self.rows.append(limit_row("(3) mount to live", worst, seconds(worst), 0.5, "< 0.5 s", note, strict=True))

    # (4) peak RSS of the mount daemon during (1) and (2)
    def figure_rss(self):
        if not self.peak_rss:
            self.figure_grep()
            self.figure_find()
        known = {k: v for k, v in self.peak_rss.items() if v}
        if not known:
            self.rows.append(Row("(4) peak RSS (mount)", target="<= 300 MB", result="n/a", note="daemon pid not found"))
            return
        peak = max(v["VmHWM"] for v in known.values())
        git_runs = self.git_batch_runs + self.git_check_runs
        git_peak = max(run.max_rss for run in git_runs) if git_runs else None
        row = limit_row("(4) peak RSS (mount)", peak, mb(peak), 300e6, "<= 300 MB")
        if git_peak:
            row.git, row.ratio = mb(git_peak), f"{peak / git_peak:.2f}"
        row.note = "daemon VmHWM (anon + mmap'd packs): " + ", ".join(
            f"{k} {mb(v['VmHWM'])} (anon {mb(v.get('RssAnon'))}, file {mb(v.get('RssFile'))})" for k, v in known.items())
        if git_peak:
            row.note += "; git: cat-file's own peak"
        self.rows.append(row)

    # (5) the libraries alone
    def figure_odb(self):
        self.progress("(5) odb library")
        result = self.run_library(sys.executable, "odb")
        total_bytes = sum(self.objects.sizes)
        if "error" in result:
            self.rows.append(Row("(5) odb", result="n/a", note=result["error"]))
            return
        read_ok = (result["read_objects"], result["read_bytes"]) == (len(self.bucket_ids), self.bucket_bytes)
        header_ok = (result["header_objects"], result["header_bytes"]) == (len(self.objects.ids), total_bytes)
        read_note = "bytes equal to git's" if read_ok else f"read {result['read_bytes']} bytes, git {self.bucket_bytes}"
        header_note = "count and sizes equal to git's" if header_ok else (
            f"{result['header_objects']} objects/{result['header_bytes']} bytes, git {len(self.objects.ids)}/{total_bytes}")
        self.add(ratio_row(f"(5) odb read {self.bucket_label}", result["read_s"], self.git_batch(False), 1.3, read_note, read_ok),
                 [] if read_ok else [read_note])
        self.add(ratio_row("(5) odb read_header all", result["header_s"], self.git_check(False), 5, header_note, header_ok),
                 [] if header_ok else [header_note])
        open_ms = result["open_first_s"] * 1000
        note = f"first open in a fresh process, best of {self.args.repeat}; a reopen: {result['open_s'] * 1000:.1f} ms"
        self.rows.append(limit_row("(5) odb.open", open_ms, f"{open_ms:.1f} ms", 50, "< 50 ms", note, strict=True))
        for other in ("pygit2", "dulwich"):
            self.figure_other_library(other)

    def figure_other_library(self, name):
        python = self.python_with(name)
        if python is None:
            self.rows.append(Row(f"(5) {name}", result="n/a", note="not importable"))
            return
        self.progress(f"(5) {name}")
        result = self.run_library(python, name)
        if "error" in result:
            self.rows.append(Row(f"(5) {name}", result="n/a", note=result["error"]))
            return
        self.rows.append(info_row(f"(5) {name} read {self.bucket_label}", result["read_s"], self.git_batch(False)))
        if "header_s" in result:
            self.rows.append(info_row(f"(5) {name} read_header all", result["header_s"], self.git_check(False)))

    def python_with(self, module):
        for python in (sys.executable, self.args.other_python):
            if python and os.path.exists(python):
                probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
                if probe.returncode == 0:
                    return python
        return None

    def run_library(self, python, backend):
        """Best of --repeat fresh worker processes, each run between two git samples."""
        best = {}
        for _ in range(self.args.repeat):
            self.git_batch()
            self.git_check()
            result = self.run_library_once(python, backend)
            if "error" in result:
                return result
            for key, value in result.items():
                best[key] = min(best[key], value) if key in best and key.endswith("_s") else best.get(key, value)
        return best

    def run_library_once(self, python, backend):
        cmd = [python, os.path.join(HERE, "bench_library.py"), backend, os.path.abspath(self.repo),
               self.ids_path, "1"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            return {"error": lines[-1]}

    def add(self, row, problems):
        if problems:
            row.result = "FAIL"
            row.note = "; ".join(dict.fromkeys(problems))
        self.rows.append(row)

    def run(self):
        steps = [("grep", self.figure_grep), ("find", self.figure_find), ("mount", self.figure_mount),
                 ("rss", self.figure_rss), ("odb", self.figure_odb)]
        for name, step in steps:
            if name not in self.args.figures:
                continue
            try:
                step()
            except MountError as error:
                self.rows.append(Row(f"({_number(name)}) {name}", result="n/a", note=str(error)))
                if name in ("grep", "find"):
                    # Without a mount, the later mount figures would fail the same way.
                    self.args.figures -= {"grep", "find", "mount", "rss"}


def merge_peaks(peaks):
    """Field-wise maximum of several MemoryWatch results."""
    merged = {}
    for peak in peaks:
        for key, value in (peak or {}).items():
            merged[key] = max(merged.get(key, 0), value)
    return merged or None


def mb(value):
    return "?" if value is None else f"{value / 1e6:.0f} MB"


def _number(name):
    return next(k for k, v in FIGURES.items() if v == name)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.prepare:
            prepare(args.prepare, args.repo, args.ref, args.max_pack_size)
            if not args.figures:
                return 0
        objects = list_objects(args.repo)
    except GitError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gitfs-bench-") as workdir:
        bench = Bench(args, objects, workdir)
        print_header(args.repo, objects, bench)
        try:
            bench.run()
        except GitError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        print(render(bench.rows))
    return 1 if any(row.result == "FAIL" for row in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
