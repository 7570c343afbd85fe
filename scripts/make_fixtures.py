"""Builds the deterministic fixture repositories (and fixtures/demo.git) with real git.

    python scripts/make_fixtures.py            # fixtures/build/<key>/... if out of date
    python scripts/make_fixtures.py --demo     # fixtures/demo.git if missing
    python scripts/make_fixtures.py --demo --force DEST.git

The build key is a hash of this file and of `git --version`, so editing the builder rebuilds.
Every build goes into a temporary directory that is renamed into place, so two processes racing
(two pytest runs) never see a half-built set: the loser throws its copy away.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "fixtures" / "build"
DEMO_PATH = ROOT / "fixtures" / "demo.git"

# 2020-01-01T00:00:00Z; every commit advances the clock so ids are stable and dates ordered.
EPOCH = 1577836800

# Each fixture repository is listed here with its layout; tests name them by these keys.
FIXTURES = {
    "empty": "git init, no objects at all",
    "loose": "work tree, loose objects only (commits, nested trees, binary, symlink, annotated tag)",
    "bare": "bare repository (the demo layout): packs under a midx, one pack outside, loose objects",
    "idx-v1": "one pack whose .idx is version 1",
    "idx-v2": "one pack whose .idx is version 2",
    "idx-v2-large": "one pack whose .idx v2 puts most offsets in the 64-bit table",
    "ofs-delta": "one pack of OFS_DELTA entries",
    "ref-delta": "one pack of REF_DELTA entries (repack.useDeltaBaseOffset=false)",
    "deep-delta": "a file edited over 100 commits, repacked with --depth=250 --window=250",
    "midx": "three packs under a multi-pack-index, one pack outside it, loose objects",
    "alt-base": "the repository the alternates fixtures borrow from (packs + loose)",
    "alt-relative": "objects/info/alternates with a relative path to alt-base",
    "alt-absolute": "objects/info/alternates with an absolute path to alt-base",
    "alt-chain": "alternates -> alt-relative -> alt-base (a chain of two)",
    "sha256": "SHA-256 repository: packs under a midx, a pack outside it, loose, a tag, many blobs",
    "ambiguous": "4000 small blobs, half packed, half loose, so 4- and 5-hex prefixes collide",
    "bigblob": "multi-MB blobs: one loose, one packed whole, one packed as a delta",
    "refs": "refs to navigate: packed and loose (loose winning), symrefs, tags of tags/trees/blobs, "
            "a linked worktree, executables, symlinks, a submodule, 1000-deep and 100k-wide trees, "
            "a branch of names that listings get wrong (names)",
    "history": "git's revision language and .log: merges (an octopus too), annotated and nested tags, "
               "reflogs with resets and checkouts (@{n}, @{date}, @{-n}), messages to search (:/), "
               "a branch without a reflog, and Git LFS pointers with their objects (lfs/objects)",
}


def build_key() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(subprocess.run(["git", "--version"], capture_output=True, check=True).stdout)
    return h.hexdigest()[:16]


def git_env(clock: list[int] | None = None) -> dict[str, str]:
    """An environment that makes git ignore every user and system setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        HOME="/nonexistent",
        GIT_AUTHOR_NAME="Fixture Author",
        GIT_AUTHOR_EMAIL="author@fixtures.invalid",
        GIT_COMMITTER_NAME="Fixture Committer",
        GIT_COMMITTER_EMAIL="committer@fixtures.invalid",
        TZ="UTC",
        LC_ALL="C",
    )
    if clock is not None:
        stamp = f"@{EPOCH + clock[0]} +0000"
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = stamp
    return env


class Repo:
    """A repository being built: runs git in it with a fixed, advancing clock."""

    # pack.threads=1: threaded delta search picks different bases run to run.
    CONFIG = ["-c", "init.defaultBranch=main", "-c", "pack.threads=1", "-c", "gc.auto=0",
              "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]

    def __init__(self, path: Path, *, bare: bool = False, object_format: str = "sha1",
                 git: str = "git", init_args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.path = path
        self.env = env or {}  # on top of git_env(), e.g. GIT_TEST_* switches of the newest git
        self.bare = bare
        self.git_binary = git  # the newest git, for formats that Debian's git cannot write
        self.clock = [0]
        self.work = path if not bare else path.parent / (path.name + ".work")
        init = ["init", "-q", f"--object-format={object_format}", *init_args]
        if bare:
            init.append("--bare")
        self._run(*init, str(path), cwd=path.parent)
        # Settings that must also hold for git run later (tests, the demo) in this repo.
        for key, value in (("gc.auto", "0"), ("core.autocrlf", "false"), ("pack.threads", "1"),
                           ("maintenance.auto", "false")):
            self.git("config", key, value)

    @property
    def git_dir(self) -> Path:
        return self.path if self.bare else self.path / ".git"

    @property
    def objects(self) -> Path:
        return self.git_dir / "objects"

    def _run(self, *args: str, cwd: Path, input: bytes | None = None) -> str:
        proc = subprocess.run([self.git_binary, *self.CONFIG, *args], cwd=cwd,
                              env={**git_env(self.clock), **self.env}, input=input, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode()

    def git(self, *args: str, input: bytes | None = None) -> str:
        if self.bare:
            self.work.mkdir(exist_ok=True)
            args = (f"--git-dir={self.path}", f"--work-tree={self.work}", *args)
            return self._run(*args, cwd=self.work, input=input)
        return self._run(*args, cwd=self.path, input=input)

    def write(self, name: str, data: bytes | str) -> None:
        target = self.work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def commit(self, message: str, files: dict[str, bytes | str] | None = None) -> str:
        for name, data in (files or {}).items():
            self.write(name, data)
        self.clock[0] += 60
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def tag(self, name: str, message: str) -> None:
        self.clock[0] += 60
        self.git("tag", "-a", name, "-m", message)

    def repack(self, *args: str) -> None:
        self.git("repack", "-q", *args)

    def packs(self) -> list[Path]:
        return sorted((self.objects / "pack").glob("pack-*.pack"))

    def hash_blobs(self, blobs: list[bytes]) -> list[str]:
        """Writes blobs as loose objects with one git process."""
        scratch = Path(tempfile.mkdtemp(prefix="blobs-", dir=self.path.parent))
        names = []
        for i, data in enumerate(blobs):
            (scratch / str(i)).write_bytes(data)
            names.append(str(scratch / str(i)))
        out = self.git("hash-object", "-w", "--stdin-paths", input="\n".join(names).encode() + b"\n")
        shutil.rmtree(scratch)
        return out.split()

    def pack_objects(self, ids: list[str]) -> None:
        """Packs exactly these objects into a new pack and drops their loose copies."""
        self.git("pack-objects", "-q", str(self.objects / "pack" / "pack"),
                 input="\n".join(ids).encode() + b"\n")
        self.git("prune-packed")

    def finish(self) -> None:
        if self.bare and self.work.exists():
            shutil.rmtree(self.work)


def text_file(seed: int, lines: int) -> str:
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "pack", "index", "tree", "blob", "commit", "fanout",
             "object", "inflate", "offset", "mount", "bucket", "prefix"]
    picks = rnd.choices(words, k=8 * lines)
    return "".join(" ".join(picks[i:i + 8]) + "\n" for i in range(0, len(picks), 8))


def edit(text: str, seed: int) -> str:
    """Changes a few lines, so that consecutive versions delta well against each other."""
    rnd = random.Random(seed)
    lines = text.splitlines(keepends=True)
    for _ in range(3):
        lines[rnd.randrange(len(lines))] = f"edit {seed} {rnd.random()}\n"
    lines.append(f"line added by edit {seed}\n")
    return "".join(lines)


def history(repo: Repo, commits: int, seed: int, *, start: int = 0) -> None:
    """A small evolving project: a source file edited each time, new files now and then."""
    main = text_file(seed, 80)
    for i in range(start, start + commits):
        main = edit(main, seed * 1000 + i)
        files = {"src/main.txt": main, f"notes/note-{i % 7}.txt": f"note {i} of seed {seed}\n"}
        if i % 5 == 0:
            files[f"docs/chapter-{i}.md"] = text_file(seed + i, 30)
        repo.commit(f"commit {i} (seed {seed})", files)


# ---- the fixtures -------------------------------------------------------------------------------


def make_empty(path: Path) -> None:
    Repo(path)


def make_loose(path: Path) -> None:
    repo = Repo(path)
    repo.commit("first", {"README": "hello gitfs\n", "empty": b"",
                          "bin/data.bin": bytes(range(256)) * 4,
                          "a/b/c/d/deep.txt": "deep in the tree\n"})
    os.symlink("README", path / "link")
    (path / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (path / "tool.sh").chmod(0o755)
    repo.commit("second: a symlink and an executable")
    repo.commit("third", {"README": "hello gitfs, edited\n", "unicode-é.txt": "ünïcödé\n"})
    repo.tag("v1.0", "an annotated tag\n\nwith a body")
    repo.git("tag", "lightweight")
    repo.finish()


def make_demo(path: Path) -> None:
    """The demo (and the `bare` fixture): every source kind in one small bare repository."""
    repo = Repo(path, bare=True)
    repo.commit("Initial commit", {
        "README.md": "# demo\n\nA small project whose objects gitfs shows.\n",
        "src/hello.py": 'print("hello from gitfs")\n',
        "TODO": "TODO: mount every object database\n",
    })
    history(repo, 11, seed=1, start=1)
    repo.repack("-d")          # pack 1
    history(repo, 8, seed=1, start=12)
    repo.tag("v1.0", "Release 1.0\n\nThe first tagged demo state.")
    repo.repack("-d")          # pack 2
    history(repo, 8, seed=1, start=20)
    repo.repack("-d")          # pack 3
    repo.git("multi-pack-index", "write")
    history(repo, 6, seed=1, start=28)
    repo.repack("-d")          # pack 4, outside the midx
    history(repo, 4, seed=1, start=34)   # loose objects
    repo.commit("TODO list", {"TODO": "TODO: grep across every object\nTODO: refresh on re-read\n"})
    repo.finish()


def make_single_pack(path: Path, *, index_version: str | None = None, ref_delta: bool = False) -> None:
    repo = Repo(path)
    history(repo, 12, seed=2)
    repo.tag("v0.1", "tag in a pack")
    if ref_delta:
        repo.git("config", "repack.useDeltaBaseOffset", "false")
    repo.repack("-adf")
    if index_version is not None:
        (pack,) = repo.packs()
        idx = pack.with_suffix(".idx")
        idx.chmod(0o644)
        idx.unlink()
        repo.git("index-pack", f"--index-version={index_version}", "-o", str(idx), str(pack))
    repo.finish()


def make_deep_delta(path: Path) -> None:
    repo = Repo(path)
    text = text_file(3, 1000)
    # One more line rewritten per commit: each version is closest to its neighbour, which is
    # what lets git chain them (about 55 deep with git 2.39) rather than star them off one base.
    for i in range(100):
        lines = text.splitlines(keepends=True)
        lines[(i * 7) % len(lines)] = f"line rewritten at step {i}\n"
        text = "".join(lines)
        repo.commit(f"edit {i}", {"story.txt": text})
    repo.repack("-adf", "--depth=250", "--window=250")
    repo.finish()


def make_midx(path: Path) -> None:
    repo = Repo(path)
    for batch in range(3):
        history(repo, 6, seed=4, start=batch * 6)
        repo.repack("-d")
    repo.git("multi-pack-index", "write")
    history(repo, 5, seed=4, start=18)
    repo.repack("-d")          # outside the midx
    history(repo, 4, seed=4, start=23)   # loose
    repo.tag("v2", "a tag left loose")
    repo.finish()


def make_alternates(root: Path, final_root: Path) -> None:
    base = Repo(root / "alt-base")
    history(base, 8, seed=5)
    base.repack("-d")
    history(base, 3, seed=5, start=8)
    base.finish()
    for name, parent in (("alt-relative", "alt-base"), ("alt-absolute", "alt-base"),
                         ("alt-chain", "alt-relative")):
        repo = Repo(root / name)
        parent_objects = root / parent / ".git" / "objects"
        # Relative to this objects directory, as git resolves them.
        (repo.objects / "info" / "alternates").write_text(
            os.path.relpath(parent_objects, repo.objects) + "\n")
        head = (root / parent / ".git" / "refs" / "heads" / "main").read_text().strip()
        repo.git("update-ref", "refs/heads/main", head)
        repo.git("reset", "-q", "--hard")
        repo.clock[0] = 10_000 * (1 + len(name))
        history(repo, 4, seed=6 + len(name), start=100)
        repo.repack("-d", "-l")
        history(repo, 2, seed=6 + len(name), start=104)   # and some loose
        repo.finish()
    # The absolute path must name where the set ends up, not the temporary build directory.
    final = final_root / "alt-base" / ".git" / "objects"
    (root / "alt-absolute" / ".git" / "objects" / "info" / "alternates").write_text(f"{final}\n")


def blob_corpus(count: int, seed: int) -> list[bytes]:
    return [f"blob {i} of corpus {seed}\n".encode() for i in range(count)]


def make_sha256(path: Path) -> None:
    repo = Repo(path, object_format="sha256")
    for batch in range(2):
        history(repo, 6, seed=7, start=batch * 6)
        repo.repack("-d")
    repo.tag("v256", "a SHA-256 tag")
    history(repo, 3, seed=7, start=12)
    repo.repack("-d")
    repo.git("multi-pack-index", "write")
    ids = repo.hash_blobs(blob_corpus(2000, 7))
    repo.pack_objects(ids[:1000])        # a pack outside the midx
    history(repo, 3, seed=7, start=15)   # loose, with the other 1000 blobs
    repo.finish()


def make_ambiguous(path: Path) -> None:
    repo = Repo(path)
    repo.commit("a commit among the blobs", {"README": "ambiguous prefixes live here\n"})
    repo.tag("t", "a tag among the blobs")
    ids = repo.hash_blobs(blob_corpus(4000, 8))
    # Every other blob packed: colliding prefixes then straddle the pack and the loose objects.
    repo.pack_objects(ids[::2])
    repo.finish()


def make_bigblob(path: Path) -> None:
    repo = Repo(path)
    rnd = random.Random(9)
    big = rnd.randbytes(3 * 2**20)
    # The text blobs are well above odb's streaming chunk (1 MiB) so that a test can tell
    # progressive inflation from whole-object inflation by peak memory; text keeps the repo small.
    repo.commit("a big blob", {"big.bin": big, "big-text.txt": text_file(9, 250_000)})
    # An edited copy, packed together with the original: one of the two becomes a delta.
    edited = big[:2**20] + b"an edit in the middle" + big[2**20:]
    repo.commit("edit the big blob", {"big.bin": edited})
    repo.repack("-adf")
    repo.commit("a loose big blob", {"loose-big.txt": text_file(10, 250_000)})
    repo.finish()


DEEP_LEVELS = 1000
WIDE_ENTRIES = 100_000
MANY_COMMITS = 1000


def tree_id(body: bytes) -> bytes:
    return hashlib.sha1(b"tree %d\0" % len(body) + body).digest()


def write_trees(repo: Repo, bodies: list[bytes]) -> None:
    """Writes tree objects built by hand (entries sorted, as git sorts them) with one git process."""
    scratch = Path(tempfile.mkdtemp(prefix="trees-", dir=repo.path.parent))
    names = []
    for i, body in enumerate(bodies):
        (scratch / str(i)).write_bytes(body)
        names.append(str(scratch / str(i)))
    out = repo.git("hash-object", "-w", "-t", "tree", "--stdin-paths", input="\n".join(names).encode() + b"\n")
    shutil.rmtree(scratch)
    if out.split() != [tree_id(b).hex() for b in bodies]:
        raise RuntimeError("git hashed a hand-made tree differently")


def fast_import(repo: Repo, commands: list[bytes]) -> None:
    repo.git("fast-import", "--quiet", "--done", input=b"".join(commands) + b"done\n")


def fast_import_commit(ref: str, mark: int, when: int, message: str, changes: list[bytes],
                       parent: str | None = None) -> list[bytes]:
    msg = message.encode()
    out = [b"commit %s\nmark :%d\n" % (ref.encode(), mark),
           b"committer Fixture Committer <committer@fixtures.invalid> %d +0000\n" % (EPOCH + when),
           b"data %d\n%s\n" % (len(msg), msg)]
    if parent:
        out.append(b"from %s\n" % parent.encode())
    return out + changes + [b"\n"]


NAMES_MANY = 1500  # entries of names:many/, so that a listing takes many readdir pages


def quoted(path: bytes) -> bytes:
    """A path as fast-import reads it in quotes (C-style), so any byte but NUL survives."""
    out = bytearray(b'"')
    for byte in path:
        out += b"\\%03o" % byte if byte < 32 or byte > 126 or byte in b'"\\' else bytes([byte])
    return bytes(out + b'"')


def names_commit(submodule: str) -> list[bytes]:
    """refs/heads/names: a root commit whose tree has the names a listing may get wrong (dot
    files and directories, spaces at either end, leading dashes, non-ASCII and non-UTF-8 bytes,
    shell and ls metacharacters), a symlink and a submodule among them, and one wide directory."""
    files = {b".gitignore": b"*.o\n", b".github/workflows/ci.yml": b"on: push\n", b".hidden/.inner": b"",
             b" leading space": b"1", b"trailing space ": b"22", b"two  spaces": b"333", b"-dash": b"-\n",
             b"--double-dash": b"--\n", "\u00fcn\u00efc\u00f8d\u00e9.txt".encode(): "\u00e9\n".encode(),
             b"latin1-\xe9": b"not utf-8\n", b"tab\there": b"\t", b"colon:name": b":",
             b"back\\slash": b"\\", b'quote"d': b'"', b"star*?[x]": b"*", b"empty": b"",
             b"d i r/-x/ f": b"deep\n"}
    for i in range(NAMES_MANY):
        files[b"many/%s%04d" % (b"-" * (i % 3) + b"n" * (i % 40), i)] = b"%d\n" % i + b"x" * (i % 97)
    changes = [b"M 100644 inline %s\ndata %d\n%s\n" % (quoted(name), len(data), data) for name, data in files.items()]
    changes.append(b"M 100755 inline %s\ndata 3\nrun\n" % quoted(b".run me"))
    changes.append(b"M 120000 inline %s\ndata 10\n.gitignore\n" % quoted(b".dot link"))
    changes.append(b"M 160000 %s %s\n" % (submodule.encode(), quoted(b".sub module")))
    changes.append(b"M 160000 %s %s\n" % (submodule.encode(), quoted(b"many/-sub")))
    return fast_import_commit("refs/heads/names", 5, 100_000, "names a listing may get wrong", changes)


def make_refs(path: Path, final: Path) -> None:
    """Everything the .refs and .tree namespaces show, in one work tree (the layout is in FIXTURES)."""
    repo = Repo(path)
    first = repo.commit("first", {"README": "navigate me\n", "src/main.c": "int main(void) { return 0; }\n",
                                  "docs/guide.md": "# guide\n", "docs/deeper/notes.txt": "notes\n"})
    (path / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (path / "tool.sh").chmod(0o755)
    os.symlink("README", path / "link-to-readme")
    os.symlink("docs/deeper", path / "link-to-dir")
    os.symlink("nowhere/at/all", path / "dangling-link")
    second = repo.commit("second: an executable and symlinks")
    # A submodule as git records it without one: a gitlink entry. Its empty directory is what
    # an unpopulated submodule looks like, so later `git add -A` keeps the entry.
    (path / "vendor" / "lib").mkdir(parents=True)
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{first},vendor/lib")
    third = repo.commit("third: a submodule", {"README": "navigate me, edited\n"})

    repo.git("branch", "feature/x", second)
    repo.git("branch", "topic", first)
    repo.git("branch", "dup", first)            # a branch and a tag of one name: the tag wins
    repo.git("branch", "doomed", first)
    repo.tag("v1.0", "release 1.0")             # annotated, on third
    repo.git("tag", "light", first)             # lightweight
    repo.clock[0] += 60
    repo.git("tag", "-a", "v1.0-outer", "-m", "a tag of a tag", "v1.0")
    repo.git("tag", "-a", "tree-tag", "-m", "a tag of a tree", f"{second}^{{tree}}")
    repo.git("tag", "-a", "blob-tag", "-m", "a tag of a blob", f"{first}:README")
    repo.git("tag", "light-tree", f"{first}^{{tree}}")
    repo.git("tag", "dup", second)
    blob = repo.git("rev-parse", f"{first}:src/main.c").strip()
    repo.git("tag", blob[:8], second)           # a name that is also a short object id
    repo.git("update-ref", f"refs/tags/{first}", second)  # a full id as a name: the object wins
    repo.git("update-ref", "refs/remotes/origin/main", second)
    repo.git("update-ref", "refs/remotes/origin/topic", first)
    repo.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    repo.git("pack-refs", "--all", "--prune")
    # After packing: loose refs that must win over their packed values, and loose-only ones.
    fourth = repo.commit("fourth: after pack-refs", {"src/main.c": "int main(void) { return 1; }\n"})
    repo.git("update-ref", "refs/heads/topic", third)
    repo.git("update-ref", "refs/heads/late", second)
    repo.git("update-ref", "-d", "refs/heads/doomed")
    repo.git("update-ref", "refs/bisect/main-only", first)   # the main worktree's own

    # A linked worktree with its own HEAD and per-worktree refs (inside the work tree, excluded).
    (repo.git_dir / "info").mkdir(exist_ok=True)
    with open(repo.git_dir / "info" / "exclude", "a") as f:
        f.write("/wt/\n")
    repo.git("worktree", "add", "-q", "--detach", "wt", second)
    worktree = Repo.__new__(Repo)
    worktree.__dict__.update(repo.__dict__, path=path / "wt", work=path / "wt", bare=False)
    worktree.git("update-ref", "refs/bisect/bad", first)
    worktree.git("update-ref", "refs/worktree/mark", third)
    # gitdir files hold absolute paths: name where the fixture set ends up, not the build dir.
    (repo.git_dir / "worktrees" / "wt" / "gitdir").write_text(f"{final / 'refs' / 'wt' / '.git'}\n")
    (path / "wt" / ".git").write_text("gitdir: ../.git/worktrees/wt\n")

    # Trees no work tree could hold, written as objects: 1000 directories deep and 100k entries
    # wide (fast-import inserts entries one by one, quadratic at that width). Then a long
    # history by fast-import, whose many ids collide in their first hex digits.
    leaf = repo.hash_blobs([b"shared by every wide entry\n"])[0]
    leaf_raw = bytes.fromhex(leaf)
    wide = b"".join(b"100644 f%06d\0%s" % (i, leaf_raw) for i in range(WIDE_ENTRIES))
    deep = [b"100644 leaf.txt\0" + leaf_raw]
    for level in range(DEEP_LEVELS - 1):
        deep.append(b"40000 d\0" + tree_id(deep[-1]))
    root = (b"40000 deep\0" + tree_id(deep[-1]) + b"100644 leaf.txt\0" + leaf_raw
            + b"40000 wide\0" + tree_id(wide))
    write_trees(repo, [wide, *deep, root])
    huge = repo.git("commit-tree", tree_id(root).hex(), "-p", fourth, "-m", "huge trees").strip()
    repo.git("update-ref", "refs/heads/huge", huge)
    fast_import(repo, names_commit(first))
    stream = []
    for i in range(MANY_COMMITS):
        changes = [b"M 100644 inline counter.txt\ndata %d\n%d\n" % (len(str(i)) + 1, i)]
        stream += fast_import_commit("refs/heads/many", 10 + i, 200_000 + i, f"count {i}", changes,
                                     parent=fourth if i == 0 else None)
    fast_import(repo, stream)
    repo.repack("-d")  # the thousand deep trees loose would make every copy of the fixture slow
    repo.finish()


HISTORY_LINEAR = 40  # commits on main after the merges, for ~n and long .log listings
LFS_CONTENT = {  # path: content stored in lfs/objects (None: the pointer only, object missing)
    "assets/logo.bin": bytes(range(256)) * 64,
    "assets/missing.bin": None,
}


def lfs_pointer(content: bytes) -> bytes:
    """A Git LFS pointer file as the spec (docs/spec.md of git-lfs) writes it."""
    oid = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(content)}\n".encode()


def make_history(path: Path) -> None:
    """Merges, tags and reflogs for the revision language, each step a minute apart."""
    repo = Repo(path)

    def at(*args: str) -> str:
        repo.clock[0] += 60
        return repo.git(*args)

    c1 = repo.commit("root: the first commit", {"README": "history\n"})
    c2 = repo.commit("add the parser", {"parser.c": "parse\n"})
    at("checkout", "-q", "-b", "feature")
    repo.commit("feature: one", {"feature.txt": "1\n"})
    repo.commit("feature: two", {"feature.txt": "2\n"})
    at("checkout", "-q", "main")
    repo.commit("fix: the parser's off-by-one", {"parser.c": "parse, fixed\n"})
    at("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature")
    for name in ("topic1", "topic2"):
        at("checkout", "-q", "-b", name, "main")
        repo.commit(f"{name}: its own file", {f"{name}.txt": f"{name}\n"})
    at("checkout", "-q", "main")
    at("merge", "-q", "--no-ff", "-m", "Octopus: topic1 and topic2", "topic1", "topic2")
    repo.tag("v1.0", "release 1.0")
    repo.clock[0] += 60
    repo.git("tag", "-a", "v1.0-signed", "-m", "a tag of a tag", "v1.0")
    repo.clock[0] += 60
    repo.git("tag", "-a", "v1.0-outer", "-m", "a tag of a tag of a tag", "v1.0-signed")
    repo.git("tag", "light", c2)
    repo.clock[0] += 60
    repo.git("tag", "-a", "tree-tag", "-m", "a tag of a tree", f"{c1}^{{tree}}")
    for i in range(HISTORY_LINEAR):
        repo.commit(f"linear {i}", {"counter.txt": f"{i}\n"})
    # The reflog: a reset back and forth, a detached HEAD, checkouts to name with @{-n}.
    at("reset", "-q", "--hard", "HEAD~3")
    at("reset", "-q", "--hard", "HEAD@{1}")
    at("checkout", "-q", "feature")
    at("checkout", "-q", "--detach", c2)
    at("checkout", "-q", "topic1")
    at("checkout", "-q", "main")
    # Git LFS: pointers in the tree, their objects where git-lfs keeps them (one is missing).
    files = {"assets/readme.txt": "not an lfs file\n"}
    for name, content in LFS_CONTENT.items():
        files[name] = lfs_pointer(content if content is not None else b"never stored\n")
        if content is not None:
            oid = hashlib.sha256(content).hexdigest()
            target = repo.git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    repo.write(".gitattributes", "assets/*.bin filter=lfs diff=lfs merge=lfs -text\n")
    repo.commit("lfs: two pointers", files)
    repo.git("update-ref", "refs/heads/nolog", c1)  # then its reflog is removed: a ref without one
    (repo.git_dir / "logs" / "refs" / "heads" / "nolog").unlink()
    repo.repack("-d")


def build_all(tmp: Path, final: Path) -> None:
    make_empty(tmp / "empty")
    make_loose(tmp / "loose")
    make_demo(tmp / "bare")
    make_single_pack(tmp / "idx-v1", index_version="1")
    make_single_pack(tmp / "idx-v2", index_version="2")
    # Offsets above 4 KiB go to the 64-bit table, so the pack mixes both kinds.
    make_single_pack(tmp / "idx-v2-large", index_version="2,4096")
    make_single_pack(tmp / "ofs-delta")
    make_single_pack(tmp / "ref-delta", ref_delta=True)
    make_deep_delta(tmp / "deep-delta")
    make_midx(tmp / "midx")
    make_alternates(tmp, final)
    make_sha256(tmp / "sha256")
    make_ambiguous(tmp / "ambiguous")
    make_bigblob(tmp / "bigblob")
    make_refs(tmp / "refs", final)
    make_history(tmp / "history")
    (tmp / "BUILT").write_text(build_key() + "\n")


# ---- putting a build in place, safely against racing processes ----------------------------------


def publish(dest: Path, build) -> Path:
    """Builds into a sibling temporary directory and renames it to dest; first one wins."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    # mkdtemp makes it 0700: as published, it is a repository everyone may read, as most are
    # (the mount mirrors a repository's modes).
    tmp.chmod(0o755)
    try:
        build(tmp, dest)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_fixtures() -> Path:
    """The directory holding every fixture of FIXTURES, built if out of date."""
    key = build_key()
    dest = publish(BUILD_DIR / key, build_all)
    for old in BUILD_DIR.iterdir():
        # Stale builds of an older builder; temporary dirs may belong to a live racer.
        if old.name != key and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return dest


def ensure_demo(dest: Path = DEMO_PATH, force: bool = False) -> Path:
    if force and dest.exists():
        shutil.rmtree(dest)
    return publish(dest, lambda tmp, final: make_demo(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="build the demo repository instead")
    parser.add_argument("--force", action="store_true", help="rebuild the demo even if it exists")
    parser.add_argument("dest", nargs="?", type=Path, help="where to build the demo (default fixtures/demo.git)")
    parser.add_argument("--list", action="store_true", help="list the fixtures and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for name, what in FIXTURES.items():
                print(f"{name:14} {what}")
        elif args.demo:
            print(ensure_demo(args.dest.resolve() if args.dest else DEMO_PATH, args.force))
        else:
            print(ensure_fixtures())
    except (RuntimeError, OSError) as e:
        print(f"make_fixtures: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
