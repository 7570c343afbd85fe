"""The buckets and their objects: the names the root lists, 00..ff, each listing its objects.

A bucket lists its objects by the rest of their id, and a file holds an object's bytes. Names may
be abbreviated (>= 4 hex digits in all) and written in upper case, as git accepts them. An
object's inode comes from its id (gitfs/view/object_inodes.py); a bucket's listing is a snapshot taken
at opendir (gitfs/view/buckets.py), so re-reading a directory refreshes the view.
"""

from __future__ import annotations

import errno
import time

import odb
from odb.lru import LRU

from gitfs.view.inodes import bucket_inode, bucket_of_inode, is_object_inode
from gitfs.view.listings import BucketListing, RootListing
from gitfs.namespaces.namespace import DirectoryReplies, no_entry
from gitfs.tuning import AMBIGUOUS_KEPT, AMBIGUOUS_MEMORY

_HEX = frozenset(b"0123456789abcdefABCDEF")


class BucketsNamespace:
    """A namespace (namespace.py) whose names are the root's listing, not hidden ones."""

    names: dict[bytes, int] = {}

    def __init__(self, view):
        self.view = view
        self.store = view.store
        self.buckets = view.buckets
        self.object_inodes = view.object_inodes
        self._ambiguous: LRU[str, tuple[float, odb.AmbiguousPrefix]] = LRU(max_items=AMBIGUOUS_KEPT)

    @staticmethod
    def owns(inode: int) -> bool:
        return is_object_inode(inode) or bucket_of_inode(inode) is not None

    @staticmethod
    def is_directory(inode: int) -> bool:
        return bucket_of_inode(inode) is not None

    # -- names --------------------------------------------------------------------------------

    async def lookup_root(self, name: bytes):
        """A bucket, by its two hex digits (upper case: an alias inode, so that the kernel does
        not take one spelling's dentry for the other's)."""
        if len(name) != 2 or not _HEX.issuperset(name):
            raise no_entry()
        bucket = int(name, 16)
        if not await self.buckets.exists(bucket):
            raise no_entry()
        return self.view.dir_attr(bucket_inode(bucket, alias=name != name.lower()))

    async def lookup(self, parent: int, name: bytes):
        bucket = bucket_of_inode(parent)
        if bucket is None:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        rest = self.view.hex_len - 2
        if not 2 <= len(name) <= rest or not _HEX.issuperset(name):
            raise no_entry()
        hex_id = "%02x%s" % (bucket, name.decode().lower())
        abbreviated = len(name) < rest
        if abbreviated:
            hex_id = await self._resolve_abbreviation(hex_id)
        oid = bytes.fromhex(hex_id)
        size, access, inode = await self.view.small(self.object_inodes.stat_and_inode, oid)
        self.object_inodes.remember(inode, oid)
        self.view.reads.recent_sizes.put(oid, size)
        attr = self.view.object_attr(inode, size, access)
        if abbreviated or name != name.lower():
            # A new object can make a short name ambiguous at any time; and the kernel must not
            # take another spelling's dentry for the canonical one.
            attr.timeout = 0
        return attr

    async def _resolve_abbreviation(self, prefix: str) -> str:
        remembered = self._ambiguous.peek(prefix)
        if remembered is not None and remembered[0] > time.monotonic():
            raise remembered[1]
        try:
            return await self.view.in_thread(self.store.resolve_prefix, prefix)
        except odb.AmbiguousPrefix as e:
            # A reader retrying an ambiguous name in a loop gets the answer from memory, and the
            # log is not flooded with one line per try.
            self._ambiguous.put(prefix, (time.monotonic() + AMBIGUOUS_MEMORY, e))
            raise

    async def getattr(self, inode: int):
        if self.is_directory(inode):
            return self.view.dir_attr(inode)
        oid = await self.object_inodes.oid_of(inode)
        with self.view.reads.forgotten_if_gone(inode, oid):
            size, access = await self.view.small(self.store.stat, oid)
        return self.view.object_attr(inode, size, access)

    def forget(self, inode: int, count: int) -> None:
        pass  # object inodes come from their ids: nothing is held for them

    async def readlink(self, inode: int) -> bytes:
        raise OSError(errno.EINVAL, "not a symlink")

    # -- directories ----------------------------------------------------------------------------

    async def open_root(self) -> RootListing:
        """The root's listing: the buckets that hold objects, after a refresh of the repository."""
        buckets = await self.view.in_thread(self.view.list_root)
        self.buckets.root_listed(buckets)
        return RootListing(buckets)

    async def open_dir(self, inode: int) -> BucketListing:
        bucket = bucket_of_inode(inode)
        if bucket is None:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        return await self.buckets.list(bucket)

    async def readdir(self, listing, start: int, out: DirectoryReplies) -> None:
        if type(listing) is RootListing:
            for i in range(start, len(listing.buckets)):
                b = listing.buckets[i]
                if not out.add(b"%02x" % b, self.view.dir_attr(bucket_inode(b)), i):
                    return
            return
        # The hot loop of `find` and `ls -l`: one reply entry per Access (objects of one pack
        # share theirs, and ids interleave the packs) serves every entry that has it; sizes and
        # inodes come from arrays, names from the listing's hex (the id without its bucket's two
        # digits).
        view = self.view
        shaped: dict[int, object] = {}
        add, inodes, sizes, count = out.add_shaped, listing.inodes, listing.sizes, listing.count
        access, accesses = listing.access, view.accesses
        width = 2 * view.raw_len
        i = start
        try:
            while i < count:
                if i >= listing.filled:
                    await listing.wait_filled(i)
                stop = listing.filled
                names = listing.names(i, stop)
                for k in range(i, stop):
                    at = (k - i) * width
                    size = sizes[k]
                    if size >= 0:
                        entry = shaped.get(access[k])
                        if entry is None:
                            entry = shaped[access[k]] = out.shape(view.object_attr(0, 0, accesses[access[k]]))
                        sent = add(names[at + 2 : at + width], entry, inodes[k], size, k)
                    else:
                        sent = out.add(names[at + 2 : at + width], view.broken_attr(inodes[k]), k)
                    if not sent:
                        i = k
                        return
                i = stop
        finally:
            view.replied(listing, i)

    # -- files ----------------------------------------------------------------------------------

    async def read(self, inode: int, offset: int, size: int):
        """Bytes of an object, by inode (the kernel sends no OPEN, so no handle exists)."""
        if self.is_directory(inode):
            raise IsADirectoryError(errno.EISDIR, "not a file")
        oid = await self.object_inodes.oid_of(inode)
        listing, k = self.buckets.position(oid)
        return await self.view.reads.read(inode, oid, listing, k, offset, size)

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        return {}  # an object's are all user.git.* (gitfs/view/xattrs.py)

    async def object_of(self, inode: int) -> bytes | None:
        return None if self.is_directory(inode) else await self.object_inodes.oid_of(inode)

    def status(self) -> dict:
        return {}
