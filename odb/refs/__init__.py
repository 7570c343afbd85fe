"""Refs, as git stores them: loose files and packed-refs (the files backend) or a reftable stack.

  store.py     RefStore: the refs of a repository (and of its worktrees) through either backend;
               which backend a repository uses (extensions.refStorage)
  ref.py       what a ref is (Ref), one git would not use (Broken), one warning per broken file
  files_backend.py, reftable_backend.py   the two backends
  packed.py    the packed-refs file, read whole and checked line by line
  reftable.py  reftable files and the tables.list stack
  reflog.py    reflogs (logs/), for <ref>@{n} and <ref>@{date}
  names.py     git's rules for ref names, root refs and per-worktree refs
"""

from .store import Ref, RefStore, config_value, ref_storage

__all__ = ["Ref", "RefStore", "config_value", "ref_storage"]
