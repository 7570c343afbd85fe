"""odb: a read-only git object database in pure Python.

    import odb
    store = odb.open(path)          # bare repo, .git dir, work tree containing .git, or objects/ dir
    kind, data = store.read(oid)    # oid: hex str or raw bytes; kind: "commit" | "tree" | "blob" | "tag"
    kind, size = store.read_header(oid)      # no full inflation; deltas answer from their header
    size = store.read_size(oid)     # the size alone: a delta's chain is not walked for its type
    sizes, errors = store.read_sizes(raw_ids)  # many at once (raw ids concatenated): array('q'), -1
                                    # where errors (index -> exception) says why; in C if built
    info = store.locate(oid)        # ObjectInfo(kind, size, source, offset, delta_base)
    stream = store.open_stream(oid) # ObjectStream: .kind .size .read(n) .close(); big blobs inflate as read
    full = store.resolve_prefix("5a0bd")     # >= 4 hex digits; AmbiguousPrefix / ObjectNotFound
    store.list_bucket(0x5a)         # sorted, de-duplicated hex ids whose first byte is 0x5a (alias iter_bucket)
    store.nonempty_buckets()        # sorted first bytes that hold at least one object
    iter(store)                     # every hex id once, sorted
    store.refresh(bucket=None)      # re-check the sources (one loose bucket if given); True if changed
    store.format                    # odb.SHA1 or odb.SHA256 (.hex_len, .raw_len)
    store.git_dir, store.common_dir # what discovery found (None for a bare objects directory)
    size, access = store.stat(oid)  # read_size, and odb.Access(uid, gid, mode, mtime_ns) of its file
    store.root_access()             # the Access of the objects directory (odb/access.py: the rule)
    store.directories()             # real paths of every directory the store reads
    store.refuse_under(mountpoint)  # never open anything at or below it (call before mounting)

Refs, trees and revisions (odb.refs, odb.tree, odb.revision):

    refs = odb.RefStore(git_dir, common_dir, store.format)   # loose, packed-refs or reftable
    refs.list(), refs.read(name), refs.resolve(name), refs.head()
    rev = odb.revision.resolve(store, refs, "main~2")        # Revision(tree, commit, date, ...)
    odb.revision.lookup(store, refs, "HEAD@{1}").oid         # git's revision language, as rev-parse
    walk = odb.history.FirstParents(store, commit)           # rev-list --first-parent, walked on demand
    for entry in odb.Tree(store.read(rev.tree)[1], store.format, rev.tree): ...

odb.open(path, env=None) finds the repository as `git -C path` does: a work tree or any of its
subdirectories, a .git directory or file, a bare repository, or an objects directory; GIT_DIR,
GIT_COMMON_DIR, GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES, GIT_CEILING_DIRECTORIES
and GIT_DISCOVERY_ACROSS_FILESYSTEM of env (os.environ by default) count. path may be str or
bytes, in any encoding.

Errors: OdbError, and under it NotARepository, AccessDenied, ObjectNotFound, AmbiguousPrefix,
CorruptObject. Not-found is None inside the library and ObjectNotFound only at this public API.
"""

from .access import Access
from .errors import (
    AccessDenied,
    AmbiguousPrefix,
    CorruptObject,
    NotARepository,
    ObjectNotFound,
    OdbError,
    RepositoryGone,
)
from .oid import SHA1, SHA256, ObjectFormat
from .store import ObjectInfo, ObjectStream, Store, open
from .refs import Ref, RefStore
from .objects.tree import Tree, TreeEntry
from .objects import tree  # noqa: F401 - odb.tree, as the API above names it (and the README's example)
from . import history, revision

__all__ = [
    "Access",
    "AccessDenied",
    "AmbiguousPrefix",
    "CorruptObject",
    "NotARepository",
    "ObjectFormat",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStream",
    "OdbError",
    "Ref",
    "RefStore",
    "RepositoryGone",
    "SHA1",
    "SHA256",
    "Store",
    "Tree",
    "TreeEntry",
    "history",
    "open",
    "revision",
]
