"""Benchmark figure (10): a revision's first-parent history under MNT/.log (issue 19), against git.

`ls -U MNT/.log/REV | head` (the first entries: the history is walked as readdir asks, so this
costs the same on any history) against `git rev-list --first-parent REV | head`, and a full
`ls MNT/.log/REV` against `git rev-list --first-parent REV`, each on a fresh mount. The names
are checked against git's ids in git's order.
"""

import os
import time

from odb.revision import encode_component

from bench_figures import Comparison, Samples, best
from bench_git import GitError, git, timed_stream
from bench_mount import FreshMount, first_line, through_mount
from bench_table import Row
from bench_tree import default_rev

HEAD_LINES = 10
POSITION_DIGITS = 7
ABBREV = 12


def expected_names(ids):
    return [f"{k:0{POSITION_DIGITS}d}-{oid[:ABBREV]}" for k, oid in enumerate(ids)]


def listing(mount, directory, out_path, first):
    """`ls -U DIR | head` (first) or `ls DIR`, output to out_path: (Run, cpu, error or None)."""
    cmd = ["sh", "-c", f'ls -U -- "$1" | head -n {HEAD_LINES}' if first else 'ls -- "$1"', "sh", directory]
    env = dict(os.environ, LC_ALL="C")
    run, cpu = through_mount(mount, lambda: timed_stream(cmd, env=env, stdout_path=out_path))
    return run, cpu, (first_line(run.stderr, "ls failed") if run.status != 0 else None)


def figure_log(bench):
    repo, rev = bench.repo, bench.args.rev or default_rev(bench.repo)
    if rev is None:
        bench.items.append(Row("(10) .log", result="n/a", note="HEAD is unborn and there are no refs (--rev)"))
        return
    try:
        ids = git(repo, "rev-list", "--first-parent", rev).split()
    except GitError as e:
        bench.items.append(Row("(10) .log", result="n/a", note=str(e)))
        return
    component = encode_component(rev)  # as .log names it: ":" for "/" in a ref name
    label = f".log/{component}"
    bench.progress(f"(10) ls -U {label} | head and ls {label}, through fresh mounts")
    quoted = rev.replace("'", "'\\''")
    bench.add_git_work("rev-list-head", lambda: timed_stream(
        ["sh", "-c", f"git -C \"$1\" rev-list --first-parent '{quoted}' | head -n {HEAD_LINES}", "sh", repo]))
    bench.add_git_work("rev-list", lambda: timed_stream(["git", "-C", repo, "rev-list", "--first-parent", rev]))
    names = expected_names(ids)
    firsts = []  # seconds from opendir to the first entry, in this process, on a fresh mount
    for _ in range(bench.args.repeat):
        with FreshMount(repo) as mount:
            bench.mount_times.append(mount.mount_seconds)
            start = time.perf_counter()
            with os.scandir(os.path.join(mount.mountpoint, ".log", component)) as entries:
                entry = next(entries, None)
            firsts.append(time.perf_counter() - start)
            if entry is None or entry.name != names[0]:
                firsts[-1] = None
    out_path = os.path.join(bench.workdir, "log-ls")
    for first, work, samples in ((True, "rev-list-head", Samples()), (False, "rev-list", Samples())):
        for _ in range(bench.args.repeat):
            bench.sample_git(work)
            with FreshMount(repo) as mount:
                bench.mount_times.append(mount.mount_seconds)
                directory = os.path.join(mount.mountpoint, ".log", component)
                samples.add(*listing(mount, directory, out_path, first), None)
                with open(out_path) as f:
                    got = f.read().split()
                want = names[:HEAD_LINES] if first else names
                if got != want:
                    samples.problems.append(f"listed {len(got)} names, git {len(want)}"
                                            + ("" if len(got) != len(want) else " (names differ)"))
        what = f"ls -U {label} | head" if first else f"ls {label}"
        git_what = f"rev-list --first-parent {rev}" + (f" | head -n {HEAD_LINES}" if first else "")
        note = f"{len(ids)} commits" + ("; names equal to git's" if not samples.problems else "") + f"; git: {git_what}"
        if first:
            shown = [t for t in firsts if t is not None]
            note += (f"; first entry {best(shown) * 1e3:.0f} ms after opendir (os.scandir)" if len(shown) == len(firsts)
                     else "; FIRST ENTRY WRONG")
            if len(shown) != len(firsts):
                samples.problems.append("the first entry of os.scandir is not git's newest commit")
        bench.items.append(Comparison(f"(10) {what} (mount)", best(samples.times), best(samples.cpus), work, None,
                                      note, samples.problems))
