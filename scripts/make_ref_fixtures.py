"""Builds fixtures/refs/reftable/ (a reftable repository, written by the newest git) and its answers.

    python scripts/make_ref_fixtures.py        # rewrites fixtures/refs/ (committed to git)

Debian's git 2.39 cannot read reftable (extensions.refStorage, git >= 2.45), so the repository
is committed together with what the newest git answers about it, in fixtures/refs/reftable.json:
for-each-ref (with and without root refs, also from a linked worktree), rev-parse of some revs
and symbolic-ref HEAD. The build is deterministic: fixed names and dates, auto-compaction off,
and the random part of each table's name replaced by a counter, so a re-run with the same git
writes the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import Repo, git_env  # noqa: E402
from newest_git import find_newest_git  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "fixtures" / "refs"
FOR_EACH_REF = "%(objectname) %(objecttype) %(refname) %(symref)"
BULK_TAGS = 60  # enough refs for several ref blocks of BLOCK_SIZE, and so a ref index
BLOCK_SIZE = 512
REVS = ["HEAD", "main", "heads/main", "refs/heads/main", "feature/x", "v1.0", "v1.0-outer", "light",
        "origin", "origin/main", "alias", "doomed", "bulk/007", "bulk/008", "v1.0^{tree}",
        "v1.0-outer^{tree}", "tree-tag^{tree}", "v1.0^{}", "v1.0-outer^{}", "nosuchref"]


def build(path: Path, git: str) -> None:
    # Every transaction a table of its own: the stack stays as written.
    repo = Repo(path, bare=True, git=git, init_args=("--ref-format=reftable",),
                env={"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"})
    repo.git("config", "reftable.blockSize", str(BLOCK_SIZE))
    repo.git("config", "reftable.restartInterval", "4")
    first = repo.commit("first", {"README": "reftable fixture\n", "src/a.txt": "a\n"})
    second = repo.commit("second", {"src/b.txt": "b\n"})
    repo.git("branch", "feature/x", first)
    repo.git("branch", "doomed", first)
    repo.tag("v1.0", "release 1.0")
    repo.git("tag", "light", first)
    repo.clock[0] += 60
    repo.git("tag", "-a", "v1.0-outer", "-m", "a tag of a tag", "v1.0")
    repo.git("tag", "-a", "tree-tag", "-m", "a tag of a tree", f"{first}^{{tree}}")
    repo.git("update-ref", "refs/remotes/origin/main", first)
    repo.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    updates = "".join(f"create refs/tags/bulk/{i:03d} {first if i % 2 else second}\n" for i in range(BULK_TAGS))
    repo.git("update-ref", "--stdin", input=updates.encode())
    repo.git("pack-refs")  # one base table holding everything so far
    third = repo.commit("third", {"src/a.txt": "a, edited\n"})   # a newer value for main
    repo.git("update-ref", "-d", "refs/heads/doomed")           # a deletion over the base table
    repo.git("update-ref", "-d", "refs/tags/bulk/008")
    repo.git("symbolic-ref", "refs/heads/alias", "refs/heads/main")
    repo.git("update-ref", "refs/heads/feature/x", third)
    # A linked worktree's git dir with its own reftable stack (its work tree is not kept).
    work = path.parent / "wt"
    repo.git("worktree", "add", "-q", "--detach", str(work), first)
    wt = Repo.__new__(Repo)
    wt.__dict__.update(repo.__dict__, path=work, work=work, bare=False)
    wt.git("update-ref", "refs/bisect/bad", second)
    wt.git("update-ref", "refs/worktree/mark", third)
    repo.finish()
    shutil.rmtree(work)
    (path / "worktrees" / "wt" / "gitdir").write_text("../../../wt/.git\n")
    # Not refs: git's templates, and index files (they hold stat data, different every run).
    for noise in ("hooks", "description", "info", "logs", "index", "COMMIT_EDITMSG",
                  "worktrees/wt/index", "worktrees/wt/logs"):
        target = path / noise
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    # git keeps no empty directories: drop them here, so a clone holds what was built.
    for empty in ("objects/info", "objects/pack"):
        (path / empty).rmdir()
    for stack in (path / "reftable", path / "worktrees" / "wt" / "reftable"):
        rename_tables(stack)


def rename_tables(stack: Path) -> None:
    """Table names end in a random number; a counter instead keeps re-runs byte-identical."""
    names = (stack / "tables.list").read_text().split()
    renamed = []
    for i, name in enumerate(names):
        stem, _, _random = name.rpartition("-")
        new = f"{stem}-{i:08x}.ref"
        os.rename(stack / name, stack / new)
        renamed.append(new)
    (stack / "tables.list").write_text("".join(n + "\n" for n in renamed))


def answers(path: Path, git: str) -> dict:
    import subprocess

    def run(*args: str, git_dir: Path = path, check: bool = True) -> str:
        proc = subprocess.run([git, f"--git-dir={git_dir}", *args], capture_output=True, env=git_env())
        if check and proc.returncode:
            raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode() if proc.returncode == 0 else None

    worktree = path / "worktrees" / "wt"
    return {
        "git_version": run("version").strip(),
        "tables": len((path / "reftable" / "tables.list").read_text().split()),
        "for_each_ref": run("for-each-ref", f"--format={FOR_EACH_REF}").splitlines(),
        "for_each_ref_root": run("for-each-ref", "--include-root-refs", f"--format={FOR_EACH_REF}").splitlines(),
        "worktree_for_each_ref": run("for-each-ref", f"--format={FOR_EACH_REF}", git_dir=worktree).splitlines(),
        "worktree_head": run("rev-parse", "HEAD", git_dir=worktree).strip(),
        "rev_parse": {rev: (out.strip() if (out := run("rev-parse", "--verify", "--quiet", rev, check=False))
                            else None) for rev in REVS},
        "symbolic_ref_head": run("symbolic-ref", "HEAD").strip(),
        "ls_tree_head": run("ls-tree", "-r", "HEAD").splitlines(),
    }


def main() -> int:
    git = find_newest_git()
    with tempfile.TemporaryDirectory(prefix="gitfs-ref-fixtures.") as scratch:
        repo = Path(scratch) / "reftable"
        build(repo, git)
        result = answers(repo, git)
        if result["tables"] < 2:
            raise RuntimeError("the reftable stack was compacted: expected several tables")
        DEST.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(DEST / "reftable", ignore_errors=True)
        shutil.copytree(repo, DEST / "reftable", symlinks=True)
    (DEST / "reftable.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    # Binary tables and loose objects: no end-of-line conversion, no textual diffs.
    (DEST / ".gitattributes").write_text("reftable/** -text -diff\n")
    print(DEST / "reftable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
