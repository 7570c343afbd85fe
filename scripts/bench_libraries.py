"""Benchmark figure (5): the object-database libraries alone (odb; pygit2 and dulwich to compare).

Each library runs in a fresh bench_library.py process per repeat, after a git sample of each kind.
"""

import json
import os
import subprocess
import sys

from bench_figures import Comparison
from bench_table import Row, limit_row

HERE = os.path.dirname(os.path.abspath(__file__))
READ_LIMIT = 1.3
HEADER_LIMIT = 5
OPEN_LIMIT_MS = 50


def figure_odb(bench):
    bench.progress("(5) odb library")
    result = run_library(bench, sys.executable, "odb")
    if "error" in result:
        bench.items.append(Row("(5) odb", result="n/a", note=result["error"]))
        return
    objects = bench.objects
    total = (len(objects.ids), sum(objects.sizes))
    read = (result["read_objects"], result["read_bytes"])
    header = (result["header_objects"], result["header_bytes"])
    read_problems = [] if read == (len(bench.bucket_ids), bench.bucket_bytes) else [
        f"read {read[1]} bytes, git {bench.bucket_bytes}"]
    header_problems = [] if header == total else [f"{header[0]} objects/{header[1]} bytes, git {total[0]}/{total[1]}"]
    bench.items.append(Comparison(f"(5) odb read {bench.bucket_label}", result["read_s"], result["read_cpu_s"],
                                  "batch", READ_LIMIT, "bytes equal to git's", read_problems))
    bench.items.append(Comparison("(5) odb read_header all", result["header_s"], result["header_cpu_s"],
                                  "check", HEADER_LIMIT, "count and sizes equal to git's", header_problems))
    open_ms = result["open_first_s"] * 1000
    note = f"first open in a fresh process, best of {bench.args.repeat}; a reopen: {result['open_s'] * 1000:.1f} ms"
    bench.items.append(limit_row("(5) odb.open", open_ms, f"{open_ms:.1f} ms", OPEN_LIMIT_MS, "< 50 ms", note,
                                 strict=True))
    for other in ("pygit2", "dulwich"):
        figure_other_library(bench, other)


def figure_other_library(bench, name):
    python = python_with(name, bench.args.other_python)
    if python is None:
        bench.items.append(Row(f"(5) {name}", result="n/a", note="not importable"))
        return
    bench.progress(f"(5) {name}")
    result = run_library(bench, python, name)
    if "error" in result:
        bench.items.append(Row(f"(5) {name}", result="n/a", note=result["error"]))
        return
    bench.items.append(Comparison(f"(5) {name} read {bench.bucket_label}", result["read_s"],
                                  result.get("read_cpu_s"), "batch", None))
    if "header_s" in result:
        bench.items.append(Comparison(f"(5) {name} read_header all", result["header_s"],
                                      result.get("header_cpu_s"), "check", None))


def python_with(module, other_python):
    for python in (sys.executable, other_python):
        if python and os.path.exists(python):
            probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
            if probe.returncode == 0:
                return python
    return None


def run_library(bench, python, backend):
    """Best of --repeat fresh worker processes, each run after a git sample of both kinds."""
    merged = {}
    for _ in range(bench.args.repeat):
        bench.sample_git("batch")
        bench.sample_git("check")
        result = run_library_once(bench, python, backend)
        if "error" in result:
            return result
        for key, value in result.items():
            timed = key.endswith("_s") and key in merged
            merged[key] = min(merged[key], value) if timed else merged.get(key, value)
    return merged


def run_library_once(bench, python, backend):
    cmd = [python, os.path.join(HERE, "bench_library.py"), backend, os.path.abspath(bench.repo),
           bench.ids_path, "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return {"error": lines[-1]}
