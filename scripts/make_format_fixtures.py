"""Builds fixtures/formats/: small repositories in the formats of the newest git, and its answers.

    python scripts/make_format_fixtures.py            # rebuilds every one (needs the newest git)
    python scripts/make_format_fixtures.py midx-chain # just these
    python scripts/make_format_fixtures.py --list

Debian's git 2.39 cannot write these formats (midx v2, incremental multi-pack-index chains) or
did not write them by default (.rev files, cruft packs with .mtimes), and dies on a midx v2. So
the repositories are committed, and beside each one what the newest git answers for it, which is
what the tests compare odb with (CI has only git 2.39):

    fixtures/formats/<name>/repo.git/      the repository (bare)
    fixtures/formats/<name>/objects.txt    cat-file --batch-all-objects --batch-check=
                                           '%(objectname) %(objecttype) %(objectsize)'
    fixtures/formats/<name>/deltas.txt     the same with '%(objectname) %(deltabase)'
    fixtures/formats/<name>/contents.txt   '<id> <sha256 of its content>', from cat-file --batch
    fixtures/formats/<name>/disambiguate.txt  '<prefix> <candidates...>' (rev-parse --disambiguate)
    fixtures/formats/<name>/refs.txt       for-each-ref
    fixtures/formats/GIT-VERSION           the git that wrote them

The build is deterministic: fixed names and dates (make_fixtures.Repo), fixed file times where git
records them (.mtimes), pack.threads=1, gc.auto=0, maintenance.auto=false, no templates. Re-running
it with the same git rewrites the same bytes (`git status` stays clean).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_fixtures import EPOCH, Repo, git_env  # noqa: E402
from newest_git import find_newest_git  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FORMATS_DIR = ROOT / "fixtures" / "formats"
# Files git writes that hold the build's own times or paths, or nothing a reader needs.
SCRATCH_FILES = ("index", "COMMIT_EDITMSG", "ORIG_HEAD", "FETCH_HEAD", "logs")


class FormatRepo(Repo):
    """A bare repository built with the newest git; git_run_bytes runs git on it alone (binary
    output, no work tree)."""

    def git_run_bytes(self, *args: str, input: bytes | None = None) -> bytes:
        argv = [self.git_binary, *self.CONFIG, f"--git-dir={self.path}", *args]
        proc = subprocess.run(argv, env=git_env(self.clock), input=input, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout


# ---- content ----------------------------------------------------------------------------------


def small_text(seed: int, lines: int = 12) -> str:
    words = ["pack", "index", "layer", "chain", "reverse", "cruft", "bitmap", "fanout", "offset"]
    return "".join(f"{words[(seed + k) % 9]} {words[(seed * 7 + k * 3) % 9]} line {k} of {seed}\n"
                   for k in range(lines))


def batch(repo: FormatRepo, seed: int, commits: int = 3) -> None:
    """A few commits: one file edited each time (so packs hold deltas), one new file each."""
    text = small_text(seed, 30)
    for i in range(commits):
        lines = text.splitlines(keepends=True)
        lines[(seed + 5 * i) % len(lines)] = f"edited in commit {i} of batch {seed}\n"
        text = "".join(lines)
        files = {"main.txt": text, f"batch-{seed}/file-{i}.txt": small_text(seed * 10 + i)}
        repo.commit(f"batch {seed}, commit {i}", files)


def pack_names(repo: FormatRepo) -> list[str]:
    return [p.name for p in repo.packs()]


def midx_pnam(path: Path) -> list[str]:
    """The PNAM pack names of a multi-pack-index file, in file order."""
    data = path.read_bytes()
    n_chunks = data[6]
    toc = [struct.unpack_from(">4sQ", data, 12 + 12 * k) for k in range(n_chunks + 1)]
    for k, (cid, start) in enumerate(toc[:-1]):
        if cid == b"PNAM":
            return [n.decode() for n in data[start:toc[k + 1][1]].rstrip(b"\0").split(b"\0")]
    raise RuntimeError(f"{path}: no PNAM chunk")


def midx_chunks(path: Path) -> list[str]:
    data = path.read_bytes()
    return [data[12 + 12 * k: 16 + 12 * k].decode() for k in range(data[6])]


def chain_layers(repo: FormatRepo) -> list[str]:
    chain = repo.objects / "pack" / "multi-pack-index.d" / "multi-pack-index-chain"
    return chain.read_text().split()


def layer_file(repo: FormatRepo, name: str) -> Path:
    return repo.objects / "pack" / "multi-pack-index.d" / f"multi-pack-index-{name}.midx"


def require(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"git did not write what this fixture needs: {what}")


def require_rev_files(repo: FormatRepo) -> None:
    packs = repo.packs()
    require(bool(packs) and all(p.with_suffix(".rev").exists() for p in packs), "a .rev beside every pack")


# ---- the fixtures -----------------------------------------------------------------------------


def make_midx_v2(repo: FormatRepo, variant: int) -> None:
    """Three packs under an incremental chain, the top two layers compacted into a plain
    multi-pack-index version 2: its PNAM keeps the layers' order, which is not sorted."""
    for b in range(3):
        batch(repo, 100 * variant + b)
        repo.git("repack", "-q", "-d", "--write-midx=incremental")
    layers = chain_layers(repo)
    repo.git("multi-pack-index", "compact", "--no-incremental", layers[1], layers[2])
    batch(repo, 100 * variant + 3, commits=2)  # loose
    midx = repo.objects / "pack" / "multi-pack-index"
    require(midx.read_bytes()[4] == 2, "a multi-pack-index version 2")
    names = midx_pnam(midx)
    require(names != sorted(names), "PNAM out of sorted order")
    require(len(repo.packs()) == 3 and len(names) == 2, "one pack outside the multi-pack-index")


def make_midx_chain(repo: FormatRepo, variant: int, layers: int = 3) -> None:
    """An incremental chain (repack --write-midx=incremental per batch), a pack outside it, loose."""
    for b in range(layers):
        batch(repo, 200 + b)
        repo.git("repack", "-q", "-d", "--write-midx=incremental")
    batch(repo, 200 + layers)
    repo.git("repack", "-q", "-d")  # outside the chain
    batch(repo, 201 + layers, commits=2)  # loose
    repo.tag("v1", "a tag, loose")
    require(len(chain_layers(repo)) == layers, f"a chain of {layers} layers")
    require(not (repo.objects / "pack" / "multi-pack-index").exists(), "no plain multi-pack-index")


def make_midx_chain_compacted(repo: FormatRepo, variant: int) -> None:
    """Four layers, the middle two compacted: a chain whose middle layer is version 2, with
    its packs in layer order (not sorted) and a base below it."""
    for b in range(4):
        batch(repo, 300 + 10 * variant + b)
        repo.git("repack", "-q", "-d", "--write-midx=incremental")
    names = chain_layers(repo)
    repo.git("multi-pack-index", "compact", "--incremental", names[1], names[2])
    layers = chain_layers(repo)
    require(len(layers) == 3, "a chain of three layers after compaction")
    middle = layer_file(repo, layers[1])
    require(middle.read_bytes()[4] == 2, "a compacted layer of version 2")
    pnam = midx_pnam(middle)
    require(len(pnam) == 2 and pnam != sorted(pnam), "the compacted layer's PNAM out of sorted order")


def make_midx_chain_bitmap(repo: FormatRepo, variant: int) -> None:
    """A chain of 3 layers, each with its bitmap, so each with a RIDX chunk whose positions count
    from the layers below it."""
    for b in range(3):
        batch(repo, 900 + b)
        repo.repack("-d")
        repo.git("multi-pack-index", "write", "--incremental", "--bitmap")
    layers = chain_layers(repo)
    require(len(layers) == 3, "a chain of 3 layers")
    require(all("RIDX" in midx_chunks(layer_file(repo, n)) for n in layers), "a RIDX chunk in every layer")


def make_rev(repo: FormatRepo, variant: int) -> None:
    """One pack of OFS deltas with its .rev file, no multi-pack-index."""
    for b in range(3):
        batch(repo, 400 + b)
    repo.repack("-a", "-d", "-f")
    require(len(repo.packs()) == 1, "one pack")
    require_rev_files(repo)


def make_midx_ridx(repo: FormatRepo, variant: int) -> None:
    """Three packs under a multi-pack-index v2 with a bitmap, so with RIDX and BTMP chunks;
    the preferred pack is not the first by pack id, so pseudo-pack order starts in the middle."""
    for b in range(3):
        batch(repo, 500 + b)
        repo.repack("-d")
    packs = pack_names(repo)
    ordered = sorted(p[:-5] + ".idx" for p in packs)
    preferred = ordered[1][:-4] + ".pack"
    repo.git("-c", "midx.version=2", "multi-pack-index", "write", "--bitmap", f"--preferred-pack={preferred}")
    midx = repo.objects / "pack" / "multi-pack-index"
    chunks = midx_chunks(midx)
    require("RIDX" in chunks and "BTMP" in chunks, "RIDX and BTMP chunks")
    require(any(p.name.endswith(".bitmap") for p in (repo.objects / "pack").iterdir()), "a multi-pack bitmap")


def make_cruft(repo: FormatRepo, variant: int) -> None:
    """A cruft pack (with its .mtimes) of unreachable objects beside the pack of reachable ones."""
    batch(repo, 600)
    repo.git("checkout", "-q", "-b", "side")
    batch(repo, 601)
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "side")
    repo.hash_blobs([f"an unreachable blob {k}\n".encode() for k in range(5)])
    # .mtimes records each unreachable object's file time: make those fixed.
    for k, path in enumerate(sorted(p for p in repo.objects.glob("??/*"))):
        os.utime(path, (EPOCH + k, EPOCH + k))
    repo.git("repack", "-q", "-d", "--cruft")
    mtimes = list((repo.objects / "pack").glob("*.mtimes"))
    require(len(mtimes) == 1 and len(repo.packs()) == 2, "one cruft pack with .mtimes beside a pack")
    batch(repo, 602, commits=1)  # loose


def make_keep_promisor(repo: FormatRepo, variant: int) -> None:
    """A .keep pack and .promisor packs (as index-pack writes them), then loose objects."""
    batch(repo, 700)
    first = repo.git("rev-parse", "HEAD").strip()
    pack = repo.git_run_bytes("pack-objects", "-q", "--revs", "--stdout", input=b"HEAD\n")
    repo.git_run_bytes("index-pack", "--stdin", "--keep=kept by the fixture", input=pack)
    batch(repo, 701)
    pack = repo.git_run_bytes("pack-objects", "-q", "--revs", "--stdout", input=f"HEAD\n^{first}\n".encode())
    repo.git_run_bytes("index-pack", "--stdin", "--promisor=promised by the fixture", input=pack)
    repo.git("prune-packed")
    batch(repo, 702, commits=1)  # loose
    pack_dir = repo.objects / "pack"
    # index-pack --promisor also copies the kept objects the new ones reference into a second
    # promisor pack (so that no promisor object refers outside promisor packs): duplicates.
    require(len(list(pack_dir.glob("*.keep"))) == 1 and len(list(pack_dir.glob("*.promisor"))) >= 1,
            "a .keep pack and a .promisor pack")


def make_bitmap(repo: FormatRepo, variant: int) -> None:
    """One pack with its reachability bitmap and .rev (repack -adb)."""
    for b in range(2):
        batch(repo, 800 + b)
    repo.repack("-a", "-d", "-b")
    require(len(list((repo.objects / "pack").glob("*.bitmap"))) == 1, "a pack bitmap")
    require_rev_files(repo)


# name -> (what it holds, builder, object format)
FIXTURES = {
    "midx-v2": ("multi-pack-index v2 (compacted) with PNAM out of order, a pack outside it, loose",
                make_midx_v2, "sha1"),
    "midx-chain": ("incremental multi-pack-index chain of 3 layers, a pack outside it, loose, a tag",
                   make_midx_chain, "sha1"),
    "midx-chain-compacted": ("chain of 3 layers whose middle one is a compacted v2 layer (PNAM out of order)",
                             make_midx_chain_compacted, "sha1"),
    "midx-chain-sha256": ("SHA-256 incremental multi-pack-index chain of 3 layers, a pack outside, loose",
                          make_midx_chain, "sha256"),
    "midx-chain-bitmap": ("chain of 3 layers, each with a bitmap and a RIDX chunk",
                          make_midx_chain_bitmap, "sha1"),
    "rev": ("one pack of OFS deltas with its .rev reverse index", make_rev, "sha1"),
    "rev-sha256": ("SHA-256: one pack of OFS deltas with its .rev reverse index", make_rev, "sha256"),
    "midx-ridx": ("multi-pack-index v2 with a bitmap: RIDX and BTMP chunks, preferred pack in the middle",
                  make_midx_ridx, "sha1"),
    "cruft": ("a cruft pack with .mtimes beside the reachable pack, loose", make_cruft, "sha1"),
    "keep-promisor": ("a .keep pack, two .promisor packs (some objects in both kinds), loose",
                      make_keep_promisor, "sha1"),
    "bitmap": ("one pack with a reachability bitmap and .rev (repack -adb)", make_bitmap, "sha1"),
}
# Builders that need content of a particular shape (pack names out of order) try variants in a
# fixed sequence; the first that works is the fixture, so the result is still deterministic.
MAX_VARIANTS = 40


# ---- git's answers ----------------------------------------------------------------------------


def prefixes(ids: list[str]) -> list[str]:
    """A few prefixes to disambiguate: unique ones of several lengths, shared ones, a miss."""
    out = [oid[:n] for oid, n in zip(ids[::max(1, len(ids) // 6)], (4, 5, 6, 7, 9, 12, 40))]
    shared = sorted({a[:4] for a, b in zip(ids, ids[1:]) if a[:4] == b[:4]})
    out += shared[:3]
    taken = {oid[:4] for oid in ids}
    out.append(next(p for p in (f"{k:04x}" for k in range(0x10000)) if p not in taken))
    return out


def write_answers(repo: FormatRepo, dest: Path) -> None:
    run = repo.git_run_bytes
    objects = run("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
    (dest / "objects.txt").write_bytes(objects)
    deltas = run("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(deltabase)")
    (dest / "deltas.txt").write_bytes(deltas)
    ids = [line.split()[0] for line in objects.decode().splitlines()]
    batch_out = run("cat-file", "--batch", input="".join(f"{oid}\n" for oid in ids).encode())
    lines, pos = [], 0
    for oid in ids:
        nl = batch_out.index(b"\n", pos)
        name, _, size = batch_out[pos:nl].decode().split()
        require(name == oid, f"cat-file --batch answers in order ({name} for {oid})")
        start = nl + 1
        content = batch_out[start:start + int(size)]
        lines.append(f"{oid} {hashlib.sha256(content).hexdigest()}\n")
        pos = start + int(size) + 1
    (dest / "contents.txt").write_text("".join(lines))
    answers = []
    for prefix in prefixes(ids):
        found = run("rev-parse", f"--disambiguate={prefix}").decode().split()
        answers.append(" ".join([prefix, *sorted(found)]) + "\n")
    (dest / "disambiguate.txt").write_text("".join(answers))
    (dest / "refs.txt").write_bytes(run("for-each-ref"))


def check_with_git(repo: FormatRepo) -> None:
    repo.git_run_bytes("fsck", "--no-dangling", "--no-progress")
    if (repo.objects / "pack" / "multi-pack-index").exists() or \
            (repo.objects / "pack" / "multi-pack-index.d" / "multi-pack-index-chain").exists():
        repo.git_run_bytes("multi-pack-index", "verify", "--no-progress")


# ---- building ---------------------------------------------------------------------------------


def tidy(repo: FormatRepo) -> None:
    """Drops what holds the build's own times and paths (the work tree's index, logs)."""
    repo.finish()
    for name in SCRATCH_FILES:
        path = repo.path / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for directory in sorted(repo.path.rglob("*"), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()  # git does not keep empty directories; the copy must not need them


def build_one(name: str, git: str, scratch: Path) -> Path:
    _, builder, object_format = FIXTURES[name]
    for variant in range(MAX_VARIANTS):
        work = scratch / f"{name}-{variant}"
        work.mkdir()
        repo = FormatRepo(work / "repo.git", bare=True, object_format=object_format, git=git,
                          init_args=("--template=",))
        try:
            builder(repo, variant)
        except RuntimeError as e:
            if "did not write what this fixture needs" not in str(e):
                raise
            shutil.rmtree(work)
            continue
        tidy(repo)
        check_with_git(repo)
        write_answers(repo, work)
        return work
    raise RuntimeError(f"{name}: no variant of {MAX_VARIANTS} gave the layout it needs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="fixtures to rebuild (default: all)")
    parser.add_argument("--list", action="store_true", help="list the fixtures and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (what, _, _) in FIXTURES.items():
            print(f"{name:22} {what}")
        return 0
    unknown = [n for n in args.names if n not in FIXTURES]
    if unknown:
        parser.error(f"unknown fixtures: {', '.join(unknown)}")
    git = find_newest_git()
    FORMATS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="format-fixtures.") as tmp:
        for name in args.names or FIXTURES:
            built = build_one(name, git, Path(tmp))
            dest = FORMATS_DIR / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(built, dest, symlinks=True)
            print(f"{name}: {sum(f.stat().st_size for f in dest.rglob('*') if f.is_file())} bytes")
    (FORMATS_DIR / "GIT-VERSION").write_text(subprocess.run([git, "--version"], capture_output=True, text=True,
                                                            check=True).stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
