"""Benchmark figure (8): a revision's tree under MNT/.tree (issue 13), against git on the same tree.

`ls -lR MNT/.tree/REV` against `git ls-tree -r -l REV`, and every file of the tree read in path
order (`xargs -0 cat`) against `git cat-file --batch` on the same blob ids, each on a fresh mount.
The listing is checked against git's paths and sizes, and the bytes read (in the first run,
untimed, through a pipe) against git's. A mount without .tree gives n/a rows, so the bench runs
before and after the namespace exists.
"""

import hashlib
import os
import subprocess
from dataclasses import dataclass, field

from bench_figures import Comparison, Samples, best
from bench_git import GitError, cat_file_batch, git, timed_stream
from bench_mount import FreshMount, list_long, parse_ls, read_files, requests_during
from bench_table import Row

LS_LIMIT = 5
READ_LIMIT = 1.5
FILE_MODES = (b"100644", b"100755")
CHUNK = 1 << 16


@dataclass
class TreeFiles:
    """What `git ls-tree -r -t -l` says of a revision's tree, in git's path order."""

    paths: list = field(default_factory=list)  # regular files (100644, 100755), bytes
    oids: list = field(default_factory=list)
    sizes: list = field(default_factory=list)
    others: int = 0  # directories (trees, submodules) and symlinks: `ls -l` lines other than files


def default_rev(repo):
    """HEAD, or when HEAD names no commit (a copy of one tag, say), the newest ref's short name."""
    try:
        git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{tree}")
        return "HEAD"
    except GitError:
        pass
    newest = git(repo, "for-each-ref", "--sort=-creatordate", "--count=1", "--format=%(refname:short)").strip()
    return newest or None


def tree_files(repo, rev):
    tree = TreeFiles()
    out = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "-t", "-l", "-z", rev], capture_output=True)
    if out.returncode != 0:
        raise GitError(f"git ls-tree {rev}: " + (out.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[0])
    for record in out.stdout.split(b"\0"):
        if not record:
            continue
        info, path = record.split(b"\t", 1)
        mode, _, oid, size = info.split()
        if mode in FILE_MODES:
            tree.paths.append(path)
            tree.oids.append(oid.decode())
            tree.sizes.append(int(size))
        else:
            tree.others += 1
    return tree


def git_digest(repo, ids_path):
    """(bytes, sha256) of the objects' contents in the order of ids_path, as git reads them."""
    digest, total = hashlib.sha256(), 0
    with open(ids_path, "rb") as ids:
        proc = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch"], stdin=ids, stdout=subprocess.PIPE)
        while header := proc.stdout.readline():
            size = int(header.split()[2])
            data = proc.stdout.read(size + 1)[:size]
            digest.update(data)
            total += len(data)
        proc.wait()
    return total, digest.hexdigest()


def mount_digest(cwd, paths_path):
    """(bytes, sha256) of the files read through the mount, in the same order."""
    digest, total = hashlib.sha256(), 0
    proc = subprocess.Popen(["xargs", "-0", "-r", "-a", paths_path, "cat", "--"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    while chunk := proc.stdout.read(CHUNK):
        digest.update(chunk)
        total += len(chunk)
    proc.wait()
    return total, digest.hexdigest()


class Absent(Exception):
    """The mount has no such tree to measure: the message says why."""


def tree_root(mount, component):
    tree = os.path.join(mount.mountpoint, ".tree")
    if not os.path.isdir(tree):
        raise Absent("no .tree in this mount")
    root = os.path.join(tree, component)
    if not os.path.isdir(root):
        raise Absent(f"git resolves it, but {os.path.join('.tree', component)} is not a directory in the mount")
    return root


def figure_tree(bench):
    repo, rev = bench.repo, bench.args.rev or default_rev(bench.repo)
    if rev is None:
        for what in ("ls -lR", "read every file"):
            bench.items.append(Row(f"(8) .tree {what}", result="n/a", note="HEAD is unborn and there are no refs (--rev)"))
        return
    tree = tree_files(repo, rev)
    component = rev.replace("/", ":")  # .tree writes a ref name's "/" as ":"
    label = f".tree/{component}"
    bench.progress(f"(8) ls -lR {label} and every file of it, through fresh mounts")
    ids_path = bench.write_ids("tree-ids", tree.oids)
    paths_path = os.path.join(bench.workdir, "tree-paths")
    with open(paths_path, "wb") as f:
        f.write(b"".join(p + b"\0" for p in tree.paths))
    bench.add_git_work("ls-tree", lambda: git_run(repo, ["ls-tree", "-r", "-l", rev]))
    bench.add_git_work("tree-batch", lambda: cat_file_batch(repo, ids_path))
    listing, reading = Samples(), Samples()
    try:
        measure_listing(bench, tree, component, listing)
        measure_reading(bench, tree, component, paths_path, ids_path, reading)
    except Absent as absent:
        fail = "git resolves it" in str(absent)
        for what in ("ls -lR", "read every file"):
            bench.items.append(Row(f"(8) {label} {what}", result="FAIL" if fail else "n/a", note=str(absent)))
        return
    files, size = len(tree.paths), sum(tree.sizes)
    note = f"{files} files, {tree.others} directories and symlinks"
    bench.items.append(Comparison(f"(8) ls -lR {label} (mount)", best(listing.times), best(listing.cpus), "ls-tree",
                                  LS_LIMIT, note + ("; paths and sizes equal to git's" if not listing.problems else "")
                                  + "; git: ls-tree -r -l " + rev, listing.problems))
    note = f"{files} files, {size / 2**20:.1f} MiB in path order"
    bench.items.append(Comparison(f"(8) read every file of {label} (mount)", best(reading.times), best(reading.cpus),
                                  "tree-batch", READ_LIMIT,
                                  note + ("; bytes equal to git's" if not reading.problems else "")
                                  + "; git: cat-file --batch on the same ids", reading.problems))


def git_run(repo, args):
    run = timed_stream(["git", "-C", repo, *args])
    if run.status != 0:
        raise GitError(f"git {args[0]}: " + (run.stderr.strip().splitlines() or ["failed"])[0])
    return run


def measure_listing(bench, tree, component, samples):
    out_path = os.path.join(bench.workdir, "tree-ls")
    expected = {os.fsdecode(p): s for p, s in zip(tree.paths, tree.sizes)}
    for _ in range(bench.args.repeat):
        bench.sample_git("ls-tree")
        with FreshMount(bench.repo) as mount:
            bench.mount_times.append(mount.mount_seconds)
            root = tree_root(mount, component)
            (run, cpu, error), requests = requests_during(mount, list_long, mount, [root], out_path, True)
            samples.add(run, cpu, requests, error)
            listed, others = parse_ls(out_path)
            seen = {os.path.relpath(os.path.join(d, name), root): size
                    for d, entries in listed.items() for name, size in entries.items()}
            if seen != expected or others != tree.others:
                differ = sum(1 for p in expected.keys() | seen.keys() if expected.get(p) != seen.get(p))
                samples.problems.append(f"ls -lR: {differ} paths missing, extra or of another size; "
                                        f"{others} directories and symlinks, git {tree.others}")


def measure_reading(bench, tree, component, paths_path, ids_path, samples):
    expected = None
    for run_number in range(bench.args.repeat):
        bench.sample_git("tree-batch")
        with FreshMount(bench.repo) as mount:
            bench.mount_times.append(mount.mount_seconds)
            root = tree_root(mount, component)
            (run, cpu, error), requests = requests_during(mount, read_files, mount, root, paths_path)
            samples.add(run, cpu, requests, error)
            if run_number == 0:
                expected = git_digest(bench.repo, ids_path)
                got = mount_digest(root, paths_path)
                if got != expected:
                    samples.problems.append(f"read {got[0]} bytes through {root}, git {expected[0]}"
                                            + ("" if got[0] != expected[0] else " (contents differ)"))
