"""odb reads on 1 and N threads of one process: whether the compiled engine (odb/_engine.c) lets
threads read in parallel. Run as `.venv/bin/python scripts/bench_threads.py REPO [--threads N]`.

Each run opens a fresh store and reads the same ids (buckets 00-03, or --random K ids drawn from
the whole repository), split among the threads in contiguous slices (interleaved, both threads would
rebuild the same delta bases at once); it prints wall and CPU
seconds and the speed-up over one thread. GITFS_PURE_PYTHON=1 measures the Python path instead.
On a VM that other work keeps busy, `chrt -f 10` in front gives the threads the CPUs they would
have on an idle machine (wall time otherwise measures the scheduler's queue).
"""

import argparse
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import odb  # noqa: E402
from odb.objects import delta_chain  # noqa: E402


def ids_of(repo: str, buckets: str, count: int) -> list[str]:
    out = subprocess.run(["git", "-C", repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"],
                         capture_output=True, text=True, check=True).stdout.split()
    if count:
        return random.Random(18).sample(out, count)
    return [o for o in out if o[:2] in buckets.split(",")]


def run(repo: str, ids: list[str], threads: int) -> tuple[float, float, int]:
    store = odb.open(repo)
    total = [0] * threads

    def work(k):
        read = store.read
        n = 0
        share = len(ids) // threads
        for oid in ids[k * share : (k + 1) * share if k < threads - 1 else len(ids)]:
            n += len(read(oid)[1])
        total[k] = n

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return wall, cpu, sum(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--buckets", default="00,01,02,03")
    parser.add_argument("--random", type=int, default=0, metavar="K", help="K random ids instead of buckets")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ids = ids_of(args.repo, args.buckets, args.random)
    print(f"{len(ids)} objects, read path: {delta_chain.IMPLEMENTATION}"
          + (f" ({delta_chain.engine.INFLATER})" if delta_chain.engine else ""))
    best = {}
    for threads in (1, args.threads):
        runs = [run(args.repo, ids, threads) for _ in range(args.repeat)]
        wall, cpu, size = min(runs)
        best[threads] = wall
        print(f"{threads} thread(s): {wall:.3f} s wall, {cpu:.3f} s CPU, {size / wall / 1e6:.0f} MB/s")
    print(f"speed-up with {args.threads} threads: {best[1] / best[args.threads]:.2f}x")


if __name__ == "__main__":
    main()
