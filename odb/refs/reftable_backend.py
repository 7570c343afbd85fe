"""The reftable backend: refs from the reftable stacks of a repository and its worktrees."""

from __future__ import annotations

import os
from typing import Iterator

from ..oid import ObjectFormat
from .files_backend import read_ref_file
from .names import PSEUDO_REFS, check_refname, is_root_ref, parse_worktree_ref
from .ref import Broken, Ref
from .reftable import ReftableStack


class ReftableBackend:
    """extensions.refStorage=reftable: the common stack, and a linked worktree's own stack
    for its per-worktree refs (reftable-backend.c). Pseudo refs stay files in the git dir."""

    def __init__(self, git_dir: str, common_dir: str, fmt: ObjectFormat):
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.format = fmt
        self.main = ReftableStack(os.path.join(common_dir, "reftable"), fmt)
        self.worktree = None
        if os.path.realpath(git_dir) != os.path.realpath(common_dir):
            self.worktree = ReftableStack(os.path.join(git_dir, "reftable"), fmt)
        self._others: dict[str, ReftableStack] = {}

    def watched(self) -> list[str]:
        """What a listing reads, to stat for a change (fingerprint): the stacks' tables.list,
        replaced whole at every write, and the git dir (pseudo refs)."""
        stacks = [self.main] if self.worktree is None else [self.main, self.worktree]
        return [*(stack.list_path for stack in stacks), self.git_dir]

    def _stack_for(self, name: str) -> tuple[ReftableStack, str]:
        where = parse_worktree_ref(name)
        if where.kind == "current":
            return self.worktree or self.main, name
        if where.kind == "other":
            stack = self._others.get(where.worktree)
            if stack is None:
                path = os.path.join(self.common_dir, "worktrees", where.worktree, "reftable")
                stack = self._others.setdefault(where.worktree, ReftableStack(path, self.format))
            return stack, where.bare
        return self.main, where.bare

    def read(self, name: str) -> Ref | None:
        if name in PSEUDO_REFS:
            try:
                return read_ref_file(os.path.join(self.git_dir, name), self.format, name, pseudo=True)
            except FileNotFoundError:
                return None
        stack, bare = self._stack_for(name)
        record = stack.read(os.fsencode(bare)) if bare else None
        return None if record is None else _ref_of(name, record)

    def raw_refs(self, prefix: str, *, root_refs: bool) -> Iterator[Ref | Broken]:
        # refs/iterator.c ref_iterator_select: a worktree's own refs shadow common ones of the
        # same name, and of the common stack only shared names are this worktree's.
        sources = [(self.main, False)] if self.worktree is None else [(self.worktree, False), (self.main, True)]
        seen = set()
        for stack, shared_only in sources:
            for record in stack.records():
                name = os.fsdecode(record.name)
                if name in seen or not name.startswith(prefix):
                    continue
                if not (name.startswith("refs/") or (root_refs and is_root_ref(name))):
                    continue
                if shared_only and parse_worktree_ref(name).kind != "shared":
                    continue  # the main worktree's own refs; this worktree has its own
                seen.add(name)
                if not check_refname(name):
                    yield Broken(f"{stack.dir}:{name}", "not a valid ref name")
                    continue
                yield _ref_of(name, record)


def _ref_of(name: str, record) -> Ref:
    if record.target is not None:
        return Ref(name, None, os.fsdecode(record.target))
    return Ref(name, record.oid, None, record.peeled)

