"""scripts/bench: time gitfs and odb against git on one repository and print one table (issues 5, 10, 13)."""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile

from bench_access import figure_access, figure_walk
from bench_figures import Bench
from bench_git import GitError, describe_repository, git, list_objects
from bench_libraries import figure_odb
from bench_log import figure_log
from bench_mount import MountError
from bench_prepare import prepare
from bench_scale import figure_scale
from bench_synthetic import default_work
from bench_table import Row, render
from bench_tree import figure_tree

FIGURES = {"1": "grep", "2": "find", "3": "mount", "4": "rss", "5": "odb", "6": "warm", "7": "ls", "8": "tree",
           "9": "scale", "10": "log", "11": "access", "12": "walk", "floor": "floor"}
DEFAULT_FIGURES = "1,2,3,4,5,6,7,8,10"
MOUNT_FIGURES = {"grep", "find", "mount", "rss", "warm", "ls", "tree", "scale", "log", "access", "walk"}
DEFAULT_PATTERN = "gitfs-bench-pattern-that-matches-nothing"
OTHER_PYTHON = "/work/bench/venv/bin/python"
MIB = 2**20


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Time gitfs (grep -r, find -size, ls -l, .tree, mount, RSS, kernel requests) and the odb "
                    "library against git on the same objects, and print one table of ratios and targets.",
        epilog="Figures: (1) grep -r over buckets 00-03 on a fresh mount, against cat-file --batch, and the kernel "
               "requests per object file it took (from the mount's user.gitfs.status); (2) find -type f -size +1k "
               "over every object, against --batch-all-objects --batch-check; (3) gitfs mount to a live mount; "
               "(4) peak RSS of the mount's processes during (1) and (2); (5) odb reading 00-03 and every header "
               "(pygit2, dulwich beside it when --other-python has them); (6) the grep of (1) again on the same "
               "mount; (7) ls -l of buckets 00-0f, against --batch-check on the same ids; (8) ls -lR .tree/REV "
               "against ls-tree -r -l, and every file of it read in path order against cat-file --batch (n/a "
               "when the mount has no .tree); (9) with --synthetic N: mount, ls -l 00-0f, find over every bucket, "
               "N/1000 random reads and the RSS after them, on an N-blob repository and on REPO; (10) ls -U "
               ".log/REV | head and ls .log/REV against git rev-list --first-parent REV (| head); (11) every way "
               "people read; (12) grep -r of the whole mount against --batch-all-objects --unordered --batch, "
               "and the RSS after it (minutes: run it with --only 12 --repeat 1). A count or "
               "byte that differs from git's makes the row FAIL and the exit status 1.",
    )
    parser.add_argument("repo", metavar="REPO", help="repository to measure (bare or not); with --prepare, the copy to create")
    parser.add_argument("--prepare", metavar="SRC", help="first create REPO from SRC: bare copy, repack -a -d --max-pack-size, multi-pack-index write")
    parser.add_argument("--ref", help="with --prepare: copy only this branch or tag's history (default: every ref)")
    parser.add_argument("--max-pack-size", default="100m", help="with --prepare: git repack --max-pack-size (default 100m)")
    parser.add_argument("--only", default=DEFAULT_FIGURES, help="figures to run, by number or name: 1 grep, 2 find, 3 mount, 4 rss, 5 odb, 6 warm, 7 ls, 8 tree, 9 scale, 10 log, 11 access (every way people read: random, 32 readers, rg, a hasher, tar, rsync, .tree grep, open files), 12 walk (the whole mount), floor; 'prepare' to stop after --prepare (default 1-8 and 10; --floor and --synthetic add theirs)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, each on a fresh mount; the best is kept (default 3)")
    parser.add_argument("--floor", action="store_true", help="also time (1), (2) and (6) through a minimal pyfuse3 filesystem serving git's answers from memory, plain (open/read/release) and with gitfs's protocol levers (no open, page-cache push, 1 MiB directory blocks, reused attributes, ENOTSUP outside user.*), with its kernel requests per object file")
    parser.add_argument("--synthetic", type=int, metavar="N", help="also run (9): build (once) a repository of N blobs with git fast-import in 100 MB packs under a multi-pack-index, and measure the mount at that scale against REPO")
    parser.add_argument("--work", default=default_work(), help=f"where --synthetic keeps its repositories, as synthetic-N.git (default {default_work()})")
    parser.add_argument("--rev", help="revision for (8) and (10), as git names it; its .tree name writes '/' as ':' (default HEAD, or the newest ref when HEAD is unborn)")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN, help="grep pattern (default matches nothing, so every byte is read)")
    parser.add_argument("--other-python", default=OTHER_PYTHON, help=f"interpreter with pygit2/dulwich, kept out of the project venv (default {OTHER_PYTHON})")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.synthetic is not None and args.synthetic < 1:
        parser.error("--synthetic must be at least 1")
    if args.floor:
        args.only += ",floor"
    if args.synthetic:
        args.only += ",scale"
    args.figures = set()
    for item in args.only.split(","):
        item = item.strip()
        if item == "prepare":
            continue
        name = FIGURES.get(item, item)
        if name not in FIGURES.values():
            parser.error(f"--only: unknown figure {item!r}")
        args.figures.add(name)
    if "scale" in args.figures and not args.synthetic:
        parser.error("figure 9 (scale) needs --synthetic N")
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


def code_version():
    """The checkout being measured: its commit, and whether files differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = git(root, "rev-parse", "--short", "HEAD").strip()
        dirty = git(root, "status", "--porcelain", "--untracked-files=no").strip()
    except GitError:
        return "gitfs (not a git checkout)"
    return f"gitfs {head}" + (" with uncommitted changes" if dirty else "")


def protocol_line():
    try:
        import pyfuse3
    except ImportError:
        return "pyfuse3 not importable: no mount figures"
    patched = getattr(pyfuse3, "READ_FH_IS_INODE_WITHOUT_OPEN", False)
    return (f"pyfuse3 {pyfuse3.__version__}, no-open reads "
            + ("available (read-by-inode patch)" if patched else "unavailable (pyfuse3 unpatched: files are opened)"))


def cpu_times():
    """(steal, total) jiffies of all CPUs since boot: a VM's steal time says how much its host took."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def print_footer(start):
    steal, total = (now - then for now, then in zip(cpu_times(), start))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"\nafter the runs: load average {load}; the host took {steal / max(total, 1):.0%} of this VM's CPU time "
          "meanwhile (steal)")


def print_header(repo, objects, bench):
    counts, objects_dir = describe_repository(repo)
    objects_dir = os.path.join(repo, objects_dir)
    midx = os.path.exists(os.path.join(objects_dir, "pack", "multi-pack-index"))
    print(f"repository: {os.path.abspath(repo)} ({objects.object_format})")
    print(f"  {len(objects.ids)} objects: {counts.get('in-pack', '?')} packed in {counts.get('packs', '?')} packs"
          f"{' + multi-pack-index' if midx else ''}, {counts.get('count', '?')} loose")
    print(f"  buckets {bench.bucket_label}: {len(bench.bucket_ids)} objects, {bench.bucket_bytes / MIB:.1f} MiB inflated")
    print(f"machine: {machine_line()}")
    print(f"software: {git(repo, 'version').strip()}, Python {platform.python_version()}, {code_version()}")
    print(f"kernel protocol: {protocol_line()}")
    print(f"page cache: {page_cache_line(objects_dir)}")
    with open("/proc/loadavg") as f:
        print(f"load average: {' '.join(f.read().split()[:3])} (other processes share the CPUs)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(flush=True)


def run_figures(bench, figures):
    """Runs the chosen figures in table order; a mount that cannot start skips the mount figures."""
    # (6) is measured on the mounts of (1), and listed after (5).
    steps = [({"grep", "warm"}, bench.figure_grep), ({"find"}, bench.figure_find), ({"floor"}, bench.figure_floor),
             ({"mount"}, bench.figure_mount), ({"rss"}, bench.figure_rss), ({"odb"}, lambda: figure_odb(bench)),
             ({"warm"}, bench.figure_warm), ({"ls"}, bench.figure_ls), ({"tree"}, lambda: figure_tree(bench)),
             ({"log"}, lambda: figure_log(bench)), ({"scale"}, lambda: figure_scale(bench)),
             ({"access"}, lambda: figure_access(bench)), ({"walk"}, lambda: figure_walk(bench))]
    for names, step in steps:
        if not names & figures:
            continue
        try:
            step()
        except MountError as error:
            name = min(names & figures)
            bench.items.append(Row(f"({_number(name)}) {name}", result="n/a", note=str(error)))
            # Without a mount, the later mount figures would fail the same way.
            figures = figures - MOUNT_FIGURES


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
        start = cpu_times()
        try:
            run_figures(bench, args.figures)
        except GitError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        rows = bench.rows()
        print(render(rows))
        print_footer(start)
    return 1 if any(row.result == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
