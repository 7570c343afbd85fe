"""The git oracle: what real git says about a repository's objects, for tests to compare with."""

from __future__ import annotations

import os
import subprocess
import threading
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator


def git_env() -> dict[str, str]:
    """An environment that keeps user and system git settings out of the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        HOME="/nonexistent",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@tests.invalid",
        GIT_COMMITTER_NAME="Test Committer",
        GIT_COMMITTER_EMAIL="committer@tests.invalid",
        GIT_AUTHOR_DATE="@1600000000 +0000",
        GIT_COMMITTER_DATE="@1600000000 +0000",
        LC_ALL="C",
    )
    return env


class GitError(RuntimeError):
    pass


class Git:
    """Runs git against one repository. git_dir is the .git directory or the bare repository."""

    def __init__(self, git_dir: Path, work_tree: Path | None = None):
        self.git_dir = Path(git_dir)
        self.work_tree = Path(work_tree) if work_tree else None

    def _argv(self, args: Iterable[str]) -> list[str]:
        argv = ["git", "-c", "gc.auto=0", "-c", "maintenance.auto=false", f"--git-dir={self.git_dir}"]
        if self.work_tree is not None:
            argv.append(f"--work-tree={self.work_tree}")
        return argv + list(args)

    def run_bytes(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(self._argv(args), input=input, capture_output=True, env=git_env(),
                              cwd=self.work_tree or self.git_dir)
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.run_bytes(*args, input=None if input is None else input.encode(), check=check).decode()

    # ---- what the repository holds ----

    @cached_property
    def object_format(self) -> str:
        return self.run("rev-parse", "--show-object-format").strip()

    @property
    def hex_len(self) -> int:
        return 64 if self.object_format == "sha256" else 40

    def objects(self) -> dict[str, tuple[str, int]]:
        """Every object (alternates included, unreachable included): id -> (kind, size)."""
        out = self.run("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
        result = {}
        for line in out.splitlines():
            oid, kind, size = line.split()
            result[oid] = (kind, int(size))
        return result

    def ids(self) -> list[str]:
        return sorted(self.objects())

    def headers(self, ids: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        """id -> (kind, size), or None where git says the object is missing."""
        ids = list(ids)
        out = self.run("cat-file", "--batch-check", input="".join(i + "\n" for i in ids))
        result = {}
        for oid, line in zip(ids, out.splitlines(), strict=True):
            fields = line.split()
            result[oid] = None if fields[-1] == "missing" else (fields[1], int(fields[2]))
        return result

    def contents(self, ids: Iterable[str]) -> Iterator[tuple[str, str | None, bytes | None]]:
        """(id, kind, data) for each id, in order, from one `git cat-file --batch` process.

        kind and data are None where git says the object is missing.
        """
        ids = list(ids)
        proc = subprocess.Popen(self._argv(["cat-file", "--batch"]), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=git_env(), cwd=self.git_dir)

        # Feeding from a thread: git's output would fill the pipe while we were still writing.
        def feed():
            try:
                for oid in ids:
                    proc.stdin.write(oid.encode() + b"\n")
            finally:
                proc.stdin.close()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        try:
            for oid in ids:
                header = proc.stdout.readline().split()
                if not header:
                    raise GitError(f"git cat-file --batch ended early at {oid}")
                if header[-1] == b"missing":
                    yield oid, None, None
                    continue
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after each object
                yield header[0].decode(), header[1].decode(), data
        finally:
            writer.join()
            proc.stdout.close()
            proc.wait()

    def read(self, oid: str) -> tuple[str, bytes]:
        ((_, kind, data),) = self.contents([oid])
        if kind is None:
            raise GitError(f"git has no object {oid}")
        return kind, data

    def disambiguate(self, prefix: str) -> list[str]:
        """Every object id starting with prefix, as `git rev-parse --disambiguate` lists them."""
        return sorted(self.run("rev-parse", f"--disambiguate={prefix}").split())

    def rev_parse(self, name: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", name).strip()

    def packs(self) -> list[Path]:
        return sorted((self.git_dir / "objects" / "pack").glob("pack-*.pack"))

    def loose_ids(self) -> list[str]:
        objects = self.git_dir / "objects"
        return sorted(p.parent.name + p.name for p in objects.glob("[0-9a-f][0-9a-f]/*")
                      if len(p.parent.name + p.name) == self.hex_len)


def colliding_prefixes(ids: Iterable[str], length: int) -> dict[str, list[str]]:
    """Prefixes of the given length that more than one of ids share, with the ids sharing them."""
    groups: dict[str, list[str]] = {}
    for oid in sorted(ids):
        groups.setdefault(oid[:length], []).append(oid)
    return {p: members for p, members in groups.items() if len(members) > 1}
