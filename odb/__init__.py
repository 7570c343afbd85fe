"""odb: a read-only git object database in pure Python.

    import odb
    store = odb.open(path)          # bare repo, .git dir, work tree containing .git, or objects/ dir
    kind, data = store.read(oid)    # oid: hex str or raw bytes; kind: "commit" | "tree" | "blob" | "tag"
    kind, size = store.read_header(oid)      # no full inflation; deltas answer from their header
    size = store.read_size(oid)     # the size alone: a delta's chain is not walked for its type
    info = store.locate(oid)        # ObjectInfo(kind, size, source, offset, delta_base)
    stream = store.open_stream(oid) # ObjectStream: .kind .size .read(n) .close(); big blobs inflate as read
    full = store.resolve_prefix("5a0bd")     # >= 4 hex digits; AmbiguousPrefix / ObjectNotFound
    store.list_bucket(0x5a)         # sorted, de-duplicated hex ids whose first byte is 0x5a (alias iter_bucket)
    store.nonempty_buckets()        # sorted first bytes that hold at least one object
    iter(store)                     # every hex id once, sorted
    store.refresh(bucket=None)      # re-check the sources (one loose bucket if given); True if changed
    store.format                    # odb.SHA1 or odb.SHA256 (.hex_len, .raw_len)

Errors: OdbError, and under it NotARepository, ObjectNotFound, AmbiguousPrefix, CorruptObject.
Not-found is None inside the library and ObjectNotFound only at this public API.
"""

from .errors import (
    AmbiguousPrefix,
    CorruptObject,
    NotARepository,
    ObjectNotFound,
    OdbError,
)
from .oid import SHA1, SHA256, ObjectFormat
from .store import ObjectInfo, ObjectStream, Store, open

__all__ = [
    "AmbiguousPrefix",
    "CorruptObject",
    "NotARepository",
    "ObjectFormat",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStream",
    "OdbError",
    "SHA1",
    "SHA256",
    "Store",
    "open",
]
