"""Benchmark worker: times one object-database library (odb, pygit2 or dulwich) and prints JSON.

Run as `python bench_library.py BACKEND REPO IDS_FILE REPEAT`. It runs in a child process so that
pygit2 and dulwich can come from a separate interpreter (they must never enter the project's venv),
and so that every backend starts from the same cold in-process state.
"""

import gc
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_of(repeat, run):
    """Call run() `repeat` times; return (best wall seconds, best CPU seconds, last result)."""
    best = best_cpu = result = None
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        best = elapsed if best is None else min(best, elapsed)
        best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
    return best, best_cpu, result


class OdbBackend:
    name = "odb"

    def __init__(self, repo):
        sys.path.insert(0, ROOT)
        import odb

        self.odb = odb
        self.repo = repo
        self.store = None

    def open(self):
        if self.store is not None:
            self.store.close()
        self.store = self.odb.open(self.repo)

    def read_all(self, ids):
        read = self.store.read
        total = 0
        for oid in ids:
            total += len(read(oid)[1])
        return len(ids), total

    def header_all(self):
        # iter(store) is the enumeration, as --batch-all-objects is git's.
        read_header = self.store.read_header
        count = total = 0
        for oid in self.store:
            total += read_header(oid)[1]
            count += 1
        return count, total


class Pygit2Backend:
    name = "pygit2"

    def __init__(self, repo):
        import pygit2

        self.pygit2 = pygit2
        self.repo = repo
        self.odb = None

    def open(self):
        self.odb = self.pygit2.Repository(self.repo).odb

    def read_all(self, ids):
        read = self.odb.read
        total = 0
        for oid in ids:
            total += len(read(oid)[1])
        return len(ids), total

    def header_all(self):
        read_header = self.odb.read_header
        count = total = 0
        for oid in self.odb:
            total += read_header(oid)[1]
            count += 1
        return count, total


class DulwichBackend:
    name = "dulwich"

    def __init__(self, repo):
        import dulwich.repo

        self.repo_class = dulwich.repo.Repo
        self.repo = repo
        self.handle = None

    def open(self):
        if self.handle is not None:
            self.handle.close()
        self.handle = self.repo_class(self.repo)

    def read_all(self, ids):
        get_raw = self.handle.object_store.get_raw
        total = 0
        for oid in ids:
            total += len(get_raw(oid.encode())[1])
        return len(ids), total

    # dulwich has no header-only read: a header walk would inflate every object.
    header_all = None

    def close(self):
        if self.handle is not None:
            self.handle.close()


BACKENDS = {b.name: b for b in (OdbBackend, Pygit2Backend, DulwichBackend)}


def measure(backend_name, repo, ids_file, repeat, tasks):
    with open(ids_file) as f:
        ids = f.read().split()
    backend = BACKENDS[backend_name](repo)
    result = {"backend": backend_name}

    first = time.perf_counter()
    backend.open()
    result["open_first_s"] = time.perf_counter() - first
    result["open_s"], _, _ = best_of(repeat, backend.open)

    if "read" in tasks:
        # A fresh handle per run, so each run starts with an empty delta-base cache.
        def read_run():
            backend.open()
            return backend.read_all(ids)

        result["read_s"], result["read_cpu_s"], (result["read_objects"], result["read_bytes"]) = best_of(
            repeat, read_run
        )

    if "header" in tasks and backend.header_all is not None:
        def header_run():
            backend.open()
            return backend.header_all()

        result["header_s"], result["header_cpu_s"], (result["header_objects"], result["header_bytes"]) = best_of(
            repeat, header_run
        )
    if hasattr(backend, "close"):
        backend.close()
    return result


def main(argv):
    if len(argv) < 5:
        print("usage: bench_library.py BACKEND REPO IDS_FILE REPEAT [TASK,...]", file=sys.stderr)
        return 2
    backend_name, repo, ids_file, repeat = argv[1], argv[2], argv[3], int(argv[4])
    tasks = set(argv[5].split(",")) if len(argv) > 5 else {"read", "header"}
    try:
        result = measure(backend_name, repo, ids_file, repeat, tasks)
    except Exception as error:  # any library failure becomes one line in the table
        result = {"backend": backend_name, "error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
