"""Times what the .refs and .tree namespaces need from odb, against git on the same repository.

    python scripts/bench_nav.py [REPO] [--rounds N]      # default REPO: the git.git snapshot

Reports the median of N rounds (and the first, cold-process round apart), in wall and CPU
time, for: resolving HEAD,
listing every ref, resolving HEAD to its tree, and walking HEAD's whole tree with every
blob's size (what `ls -lR .tree/HEAD` needs), beside `git ls-tree -r -l HEAD` and
`git for-each-ref`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import odb  # noqa: E402
from odb import revision  # noqa: E402
from odb.refs import RefStore  # noqa: E402
from odb.objects.tree import GITLINK, TREE, Tree  # noqa: E402

DEFAULT_REPO = "/work/.mirror/git+git/repo"


def walk_with_sizes(store: odb.Store, root: bytes, sizes: bool = True) -> tuple[int, int, int]:
    """(trees, entries, total blob bytes) of the whole tree, sizes from object headers."""
    trees, entries, total = 0, 0, 0
    stack = [root]
    while stack:
        oid = stack.pop()
        trees += 1
        for entry in Tree(store.read(oid)[1], store.format, oid).entries():
            entries += 1
            if entry.mode == TREE:
                stack.append(entry.oid)
            elif entry.mode != GITLINK and sizes:
                total += store.read_size(entry.oid)
    return trees, entries, total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn, rounds: int, clock=time.perf_counter) -> tuple[float, float, object]:
    """(first round, median of the others, result), on clock."""
    times, result = [], None
    for _ in range(rounds):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return times[0], statistics.median(times[1:] or times), result


def git_time(repo: str, args: list[str], rounds: int) -> tuple[float, float]:
    """(median wall time, median CPU time) of git running args."""
    def run():
        subprocess.run(["git", f"--git-dir={repo}", *args], check=True, stdout=subprocess.DEVNULL)
    return timed(run, rounds)[1], timed(run, rounds, _children_cpu)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", default=DEFAULT_REPO)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    repo, rounds = args.repo, args.rounds

    start = time.perf_counter()
    store = odb.open(repo)
    refs = RefStore(repo, None, store.format)
    opened = time.perf_counter() - start
    print(f"repository      {repo} (odb.open {opened * 1e3:.1f} ms)")

    rows = [
        ("resolve HEAD", lambda: refs.head(), None),
        ("list every ref", lambda: refs.list(), ["for-each-ref"]),
        ("HEAD to its tree", lambda: revision.resolve(store, refs, "HEAD"), ["rev-parse", "HEAD^{tree}"]),
    ]
    root = revision.resolve(store, refs, "HEAD").tree
    rows.append(("walk HEAD", lambda: walk_with_sizes(store, root, sizes=False), ["ls-tree", "-r", "HEAD"]))
    rows.append(("walk HEAD + sizes", lambda: walk_with_sizes(store, root), ["ls-tree", "-r", "-l", "HEAD"]))
    # Wall time, and CPU time (steadier on a shared machine): ours in-process, git's as a child.
    print(f"{'':18} {'first':>10} {'median':>10} {'git':>10} {'ratio':>6} {'cpu':>10} {'git cpu':>10} {'ratio':>6}")
    for label, fn, git_args in rows:
        first, median, result = timed(fn, rounds)
        cpu = timed(fn, rounds, time.process_time)[1]
        line = f"{label:18} {first * 1e3:8.2f}ms {median * 1e3:8.2f}ms"
        if git_args:
            git, git_cpu = git_time(repo, git_args, rounds)
            line += f" {git * 1e3:8.2f}ms {median / git:6.2f}"
            line += f" {cpu * 1e3:8.2f}ms {git_cpu * 1e3:8.2f}ms {cpu / git_cpu:6.2f}"
        print(line)
        if label == "list every ref":
            print(f"{'':18} {len(result)} refs")
        if label == "walk HEAD + sizes":
            print(f"{'':18} {result[0]} trees, {result[1]} entries, {result[2]} blob bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
