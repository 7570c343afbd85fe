"""MNT/.tree/<expression> and MNT/.log/<rev> through a real mount, compared with git."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from mounting import git_for, run_gitfs


@pytest.fixture(scope="module")
def history(fixtures_root):
    return fixtures_root / "history"


def git_lines(repo: Path, *args: str, check: bool = True) -> list[str]:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=check)
    return done.stdout.decode("utf-8", "surrogateescape").splitlines()


def git_bytes(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def rev_parse(repo: Path, rev: str) -> str | None:
    out = git_lines(repo, "rev-parse", "--verify", "--quiet", rev, check=False)
    return out[0] if out else None


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def git_files(repo: Path, tree: str) -> dict[str, bytes]:
    out = {}
    for line in git_bytes(repo, "ls-tree", "-r", "-z", tree).split(b"\0"):
        if line.startswith((b"100644", b"100755")):
            meta, path = line.split(b"\t", 1)
            out[os.fsdecode(path)] = git_bytes(repo, "cat-file", "blob", meta.split()[2].decode())
    return out


# component in .tree -> what git reads ("" where ":" simply stands for "/")
TREE_COMPONENTS = {
    "main~3": "main~3", "main~41^2": "main~41^2", "main~41^3": "main~41^3", "main~42^2~1": "main~42^2~1",
    "heads:main~1": "heads/main~1", "v1.0-outer^{}": "v1.0-outer^{}", "v1.0-outer~1": "v1.0-outer~1",
    "tree-tag^{tree}": "tree-tag^{tree}", "main@{2}": "main@{2}", "HEAD@{4}": "HEAD@{4}",
    "@{-1}": "@{-1}", "@{-2}": "@{-2}", "@{-3}^": "@{-3}^", ":fix": ":/fix", ":^linear 3": ":/^linear 3",
    "main@{2020-01-01 00:30:00 +0000}": "main@{2020-01-01 00:30:00 +0000}",
    "refs:heads:main@{1577838000}": "refs/heads/main@{1577838000}",
}


@pytest.mark.parametrize("component", sorted(TREE_COMPONENTS))
def test_tree_expressions_are_rev_parse(history, mount, component):
    rev = TREE_COMPONENTS[component]
    tree = rev_parse(history, rev + "^{tree}") if not rev.startswith(":/") else rev_parse(history, rev) + "^{tree}"
    assert tree is not None, rev
    m = mount(history)
    top = m.path / ".tree" / component
    assert files_of(top) == git_files(history, tree)
    commit = rev_parse(history, rev + "^{commit}") if not rev.startswith(":/") else rev_parse(history, rev)
    if commit and "^{tree}" not in rev:
        assert int(os.stat(top).st_mtime) == int(git_lines(history, "log", "-1", "--format=%ct", commit)[0])


def test_unknown_and_bad_expressions(history, mount):
    m = mount(history)
    refused_by_git = ["main~1000", "main^3", "main@{1000}", "nolog@{1}", "main@{upstream}", "main@{not a date}",
                      "@{-50}", ":/no such words"]
    assert [rev for rev in refused_by_git if rev_parse(history, rev)] == []
    for component in ("main~1000", "main^3", "main@{1000}", "nolog@{1}", "main@{upstream}", "main^{/x}",
                      ":no such words", "main@{not a date}", "@{-50}", "main~" + "9" * 30, "x^{" * 80,
                      "main:README"):
        with pytest.raises(FileNotFoundError):
            os.stat(m.path / ".tree" / component)
        with pytest.raises(FileNotFoundError):
            os.stat(m.path / ".log" / component)
    for name in ("main", "heads:main", "v1.0", "light", "HEAD"):  # names keep working
        assert (m.path / ".tree" / name / "README").read_bytes() == b"history\n"
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / ".log" / "tree-tag")  # a tree has no history


def test_resolve_reads_revisions_as_rev_parse(history, mount):
    m = mount(history)
    for rev in ("main~2", "v1.0-outer^{}", "HEAD@{4}", "@{-1}", ":/fix", "main~41^3", "tree-tag^{tree}"):
        done = run_gitfs("resolve", str(m.path), rev)
        assert (done.returncode, done.stdout.strip()) == (0, rev_parse(history, rev)), rev
    done = run_gitfs("resolve", str(m.path), "main@{1000}")
    assert done.returncode != 0 and "only" in done.stderr and len(done.stderr.splitlines()) == 1


def test_abbreviations_in_log_as_rev_parse_commit(fixtures_root, mount):
    """A 4-digit prefix of two commits is ENOTUNIQ with the candidates logged; one shared by a
    commit and other objects names the commit, as `git rev-parse <prefix>^{commit}` settles it."""
    repo = fixtures_root / "refs"
    kinds = {}
    for line in git_lines(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)"):
        oid, kind = line.split()
        kinds.setdefault(oid[:4], []).append((oid, kind))
    two_commits = next(p for p, objs in sorted(kinds.items()) if sum(k == "commit" for _, k in objs) >= 2)
    settled = next(p for p, objs in sorted(kinds.items())
                   if len(objs) >= 2 and sum(k == "commit" for _, k in objs) == 1
                   and not any(k == "tag" for _, k in objs))
    assert rev_parse(repo, two_commits + "^{commit}") is None
    commit = rev_parse(repo, settled + "^{commit}")
    m = mount(repo)
    with pytest.raises(OSError) as e:
        os.stat(m.path / ".log" / two_commits)
    assert e.value.errno == errno.ENOTUNIQ
    assert all(oid in m.log() for oid, _ in kinds[two_commits])
    first = sorted(os.listdir(m.path / ".log" / settled))[0]
    assert first == f"0000000-{commit[:12]}"


LOG_REVS = {"main": "main", "v1.0-outer": "v1.0-outer", "feature": "feature", "heads:main~3": "heads/main~3",
            "main@{2}": "main@{2}", ":fix": ":/fix", "main~41^3": "main~41^3"}


@pytest.mark.parametrize("component", sorted(LOG_REVS))
def test_log_is_rev_list_first_parent(history, mount, component):
    rev = LOG_REVS[component]
    commits = git_lines(history, "rev-list", "--first-parent", rev_parse(history, rev))
    dates = [int(d) for d in git_lines(history, "log", "--first-parent", "--format=%ct", commits[0])]
    m = mount(history)
    top = m.path / ".log" / component
    names = os.listdir(top)
    assert sorted(names) == [f"{k:07d}-{oid[:12]}" for k, oid in enumerate(commits)]
    assert names == sorted(names)  # readdir order is history order too
    for k, oid in enumerate(commits):
        entry = top / f"{k:07d}-{oid[:12]}"
        assert os.readlink(entry) == f"../../{oid[:2]}/{oid[2:]}"
        assert int(os.lstat(entry).st_mtime) == dates[k]
    assert (top / names[-1]).read_bytes() == git_bytes(history, "cat-file", "commit", commits[-1])
    assert os.getxattr(top / names[0], "user.git.type") == b"commit"


def test_ls_head_is_the_last_ten_commits(history, mount):
    m = mount(history)
    out = subprocess.run(f"ls {m.path}/.log/main | head", shell=True, capture_output=True, text=True).stdout.split()
    assert [n.split("-")[1] for n in out] == [c[:12] for c in git_lines(history, "rev-list", "-10", "--first-parent", "main")]


def test_log_is_listed_nowhere(history, mount):
    m = mount(history)
    assert ".log" not in os.listdir(m.path) and os.listdir(m.path / ".log") == []
    found = subprocess.run(["find", str(m.path), "-type", "l"], capture_output=True, text=True, check=True)
    assert found.stdout == ""


def test_lookups_and_wrong_names(history, mount):
    m = mount(history)
    commits = git_lines(history, "rev-list", "--first-parent", "main")
    top = m.path / ".log" / "main"
    k = len(commits) - 1  # looked up before any listing: the walk goes that far
    assert os.readlink(top / f"{k:07d}-{commits[k][:12]}") == f"../../{commits[k][:2]}/{commits[k][2:]}"
    for wrong in (f"{k + 1:07d}-{commits[k][:12]}", f"{k:07d}-{commits[k - 1][:12]}", f"{k}-{commits[k][:12]}",
                  f"{k:08d}-{commits[k][:12]}", f"{k:07d}-{commits[k][:11]}", "README"):
        with pytest.raises(FileNotFoundError):
            os.lstat(top / wrong)


def test_a_long_history_streams(fixtures_root, mount):
    """`ls -U | head` stops after a few entries of a 1000-commit history: readdir asked for
    a small part of it; the whole listing is git's."""
    repo = fixtures_root / "refs"
    commits = git_lines(repo, "rev-list", "--first-parent", "many")
    assert len(commits) > 1000
    m = mount(repo)
    out = subprocess.run(f"ls -U {m.path}/.log/many | head -3", shell=True, capture_output=True, text=True)
    assert out.stdout.split() == [f"{k:07d}-{c[:12]}" for k, c in enumerate(commits[:3])]
    names = os.listdir(m.path / ".log" / "many")
    assert names == [f"{k:07d}-{c[:12]}" for k, c in enumerate(commits)]


def test_log_and_tree_follow_a_moving_branch(repo_copy, mount):
    repo = repo_copy("history")
    m = mount(repo.path)
    before = git_lines(repo.path, "rev-parse", "main")[0]
    assert sorted(os.listdir(m.path / ".log" / "main"))[0] == f"0000000-{before[:12]}"
    tree = git_lines(repo.path, "rev-parse", "main^{tree}")[0]
    new = subprocess.run(["git", "-C", str(repo.path), "commit-tree", tree, "-p", before, "-m", "moved"],
                         capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "-m", "moved", "refs/heads/main", new], check=True)
    time.sleep(1.2)  # the kernel keeps a revision's entry for a second
    names = sorted(os.listdir(m.path / ".log" / "main"))
    assert names[:2] == [f"0000000-{new[:12]}", f"0000001-{before[:12]}"]
    assert os.readlink(m.path / ".log" / "main@{1}" / f"0000000-{before[:12]}").endswith(before[2:])


def test_resolve_lists_the_candidates_of_an_ambiguous_revision(fixtures_root, mount):
    repo = fixtures_root / "refs"
    commits = git_lines(repo, "rev-list", "--all")
    prefixes = {}
    for oid in commits:
        prefixes.setdefault(oid[:4], []).append(oid)
    prefix, members = next((p, c) for p, c in sorted(prefixes.items()) if len(c) >= 2)
    m = mount(repo)
    done = run_gitfs("resolve", str(m.path), prefix + "~0")
    assert done.returncode == 1 and "is ambiguous" in done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert set(members) <= set(listed)
