"""The pyfuse3 handlers: requests become view calls, answers become replies; inodes and errno only.

What the kernel asks, and how often, sets the mount's speed, so the handlers use the protocol's
levers: with a pyfuse3 that passes the inode to read() (gitfs/pyfuse3-read-by-inode.patch),
open() answers ENOSYS and the kernel (FUSE_NO_OPEN_SUPPORT) stops sending OPEN and RELEASE for
every file of the mount: a file read costs one READ, and none once read-ahead has pushed its bytes
into the page cache. flush() is left undefined, so the kernel stops sending FLUSH after the first.
Without the patch the mount opens files the ordinary way, through a handle that names the inode.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import stat

import pyfuse3

from odb.objects.tree import BLOB, EXECUTABLE, SYMLINK

from .fuse_errors import fuse_errors, read_only
from .inodes import ROOT_INODE, bucket_inode
from .listings import BucketListing, RootListing
from .tree_view import TreeListing
from .view import Attr, MountView

log = logging.getLogger("gitfs")

DOT_ENTRIES = 2  # "." and "..", offsets 0 and 1 of every directory
_SIZED = (BLOB, EXECUTABLE, SYMLINK)  # tree entries whose size is their object's
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT


class PyfuseKernel:
    """The kernel's caches, as the view reaches them (from worker threads only)."""

    @staticmethod
    def push(inode: int, offset: int, data) -> None:
        pyfuse3.notify_store(inode, offset, data)

    @staticmethod
    def forget_entry(parent: int, name: bytes) -> None:
        pyfuse3.invalidate_entry(parent, name)

    @staticmethod
    def forget_inode(inode: int) -> None:
        pyfuse3.invalidate_inode(inode)


def entry_attributes(attr: Attr) -> pyfuse3.EntryAttributes:
    a = pyfuse3.EntryAttributes()
    a.st_ino = attr.inode
    a.st_mode = attr.mode
    a.st_nlink = attr.nlink
    a.st_uid = attr.uid
    a.st_gid = attr.gid
    a.st_size = attr.size
    a.st_blocks = (attr.size + 511) >> 9
    a.st_blksize = attr.blksize
    a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = attr.mtime_ns
    a.entry_timeout = a.attr_timeout = attr.timeout
    return a


def _show_access(a: pyfuse3.EntryAttributes, access) -> None:
    a.st_uid, a.st_gid, a.st_mode = access.uid, access.gid, stat.S_IFREG | access.mode
    a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = access.mtime_ns


class GitOperations(pyfuse3.Operations):
    """Root -> 256 fanout buckets -> one read-only file per object."""

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, view: MountView, *, no_open: bool):
        super().__init__()
        self.view = view
        self.no_open = no_open  # read() gets the inode as fh (patched pyfuse3)
        self.counts = view.counts  # requests by kind: the status xattr, the log at unmount
        self._dirs: dict[int, tuple[int, object]] = {}  # opendir handle -> (inode, listing)
        self._files: dict[int, int] = {}  # open handle -> inode, without no-open
        self._handles = itertools.count(1)

    # -- names and attributes ---------------------------------------------------------------

    @fuse_errors
    async def lookup(self, parent_inode, name, ctx=None):
        if name == b".":
            return await self.getattr(parent_inode, ctx)
        if name == b"..":
            return entry_attributes(self.view.dir_attr(ROOT_INODE))
        return entry_attributes(await self.view.lookup(parent_inode, name))

    @fuse_errors
    async def forget(self, inode_list):
        for inode, count in inode_list:
            self.view.forget(inode, count)

    @fuse_errors
    async def readlink(self, inode, ctx):
        return await self.view.readlink(inode)

    @fuse_errors
    async def getattr(self, inode, ctx=None):
        return entry_attributes(await self.view.getattr(inode))

    # -- directories --------------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode, ctx):
        listing = await self.view.open_dir(inode)
        fh = next(self._handles)
        self._dirs[fh] = (inode, listing)
        return fh

    @fuse_errors
    async def readdir(self, fh, start_id, token):
        # Offsets 0 and 1 are "." and ".." (what `ls -a` shows of any directory); a listing's
        # entry k is offset k + DOT_ENTRIES, so a resumed readdir lands where it stopped. The
        # kernel takes no lookup reference for the two dots, so they are not counted as sent.
        opened = self._dirs.get(fh)
        if opened is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        inode, listing = opened
        if start_id == 0 and not pyfuse3.readdir_reply(token, b".", entry_attributes(await self.view.getattr(inode)), 1):
            return
        if start_id <= 1 and not pyfuse3.readdir_reply(token, b"..", entry_attributes(self.view.dir_attr(ROOT_INODE)),
                                                        DOT_ENTRIES):
            return
        start_id = max(start_id - DOT_ENTRIES, 0)
        if isinstance(listing, BucketListing):
            await self._readdir_bucket(listing, start_id, token)
            return
        if isinstance(listing, TreeListing):
            await self._readdir_tree(self.view.namespace_of(inode), listing, start_id, token)
            return
        if not isinstance(listing, RootListing):
            await self._readdir_namespace(self.view.namespace_of(inode), listing, start_id, token)
            return
        for i in range(start_id, len(listing.buckets)):
            b = listing.buckets[i]
            if not pyfuse3.readdir_reply(token, b"%02x" % b, entry_attributes(self.view.dir_attr(bucket_inode(b))),
                                         i + 1 + DOT_ENTRIES):
                return

    async def _readdir_bucket(self, listing: BucketListing, start: int, token) -> None:
        # The hot loop of `find` and `ls -l`: one attributes object per Access (objects of one
        # pack share theirs, and ids interleave the packs) serves every entry that has it
        # (readdir_reply copies it); sizes and inodes come from arrays.
        template = self.view.object_attr(0, 0)
        shown: dict[int, pyfuse3.EntryAttributes] = {}
        reply, inodes, sizes, count = pyfuse3.readdir_reply, listing.inodes, listing.sizes, listing.count
        access, accesses = listing.access, self.view.accesses
        skip = 2  # the name is the id without its bucket's two digits
        width = 2 * self.view.raw_len
        i = start
        try:
            while i < count:
                if i >= listing.filled:
                    await listing.wait_filled(i)
                stop = listing.filled
                names = listing.names(i, stop)
                for k in range(i, stop):
                    size = sizes[k]
                    if size >= 0:
                        entry = shown.get(access[k])
                        if entry is None:
                            entry = shown[access[k]] = entry_attributes(template)
                            _show_access(entry, accesses[access[k]])
                        entry.st_ino = inodes[k]
                        entry.st_size = size
                        entry.st_blocks = (size + 511) >> 9
                    else:
                        entry = entry_attributes(self.view.broken_attr(inodes[k]))
                    at = (k - i) * width
                    if not reply(token, names[at + skip : at + width], entry, k + 1 + DOT_ENTRIES):
                        i = k
                        return
                i = stop
        finally:
            self.view.replied(listing, i)

    async def _readdir_tree(self, namespace, listing: TreeListing, start: int, token) -> None:
        # The hot loop of `ls -lR .tree/<rev>`: as for a bucket, one attributes object per kind
        # of entry (mode and Access: the mtime is the directory's) serves every entry of that
        # kind; inodes are positions, names slices of the tree's bytes. The listing's namespace
        # (the one that owns the directory) makes each kind's attributes.
        shown: dict[tuple[int, int], pyfuse3.EntryAttributes] = {}
        reply, sizes, count, access = pyfuse3.readdir_reply, listing.sizes, listing.count, listing.access
        base, (data, spaces, nuls, modes) = listing.base, listing.tree.layout()
        lfs = listing.lfs  # -o lfs: these entries show their content's size, each on its own
        last_kind, entry = None, None
        i = start
        try:
            while i < count:
                if i >= listing.filled:
                    await listing.wait_filled(i)
                for k in range(i, listing.filled):
                    mode, size = modes[k], sizes[k]
                    if size < 0 and mode in _SIZED or lfs and k in lfs:
                        entry, last_kind = entry_attributes(namespace.listed_attr(listing, k)), None
                    else:
                        kind = (mode, access[k])
                        if kind != last_kind:
                            entry = shown.get(kind)
                            if entry is None:
                                entry = shown[kind] = entry_attributes(namespace.listed_attr(listing, k))
                            last_kind = kind
                        entry.st_ino = base | k
                        if mode in _SIZED:
                            entry.st_size = size
                            entry.st_blocks = (size + 511) >> 9
                    if not reply(token, data[spaces[k] + 1 : nuls[k]], entry, k + 1 + DOT_ENTRIES):
                        return
                    i = k + 1
        finally:
            namespace.sent_entries(listing, i - start)  # the kernel holds a lookup of each
            self.view.replied(listing, i)

    async def _readdir_namespace(self, namespace, listing, start: int, token) -> None:
        async with contextlib.aclosing(namespace.entries(listing, start)) as entries:
            async for k, name, attr in entries:
                if not pyfuse3.readdir_reply(token, name, entry_attributes(attr), k + 1 + DOT_ENTRIES):
                    namespace.unsent(attr.inode)
                    return
                namespace.sent(attr.inode)

    @fuse_errors
    async def releasedir(self, fh):
        self._dirs.pop(fh, None)

    # -- files ----------------------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode, flags, ctx):
        if flags & _WRITE_FLAGS:
            raise pyfuse3.FUSEError(errno.EROFS)
        if self.no_open:
            # The kernel stops sending OPEN (and RELEASE) for the rest of the mount; reads
            # then name the inode, and keep the page cache, as an opened file with keep_cache.
            raise pyfuse3.FUSEError(errno.ENOSYS)
        if self.view.is_directory(inode):
            raise pyfuse3.FUSEError(errno.EISDIR)
        await self.view.oid_of(inode)  # a file that vanished fails at open, as it would on disk
        fh = next(self._handles)
        self._files[fh] = inode
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    @fuse_errors
    async def read(self, fh, off, size):
        inode = fh if self.no_open else self._files.get(fh)
        if inode is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self.view.read(inode, off, size)

    @fuse_errors
    async def release(self, fh):
        self._files.pop(fh, None)

    # -- extended attributes ----------------------------------------------------------------------

    @fuse_errors
    async def getxattr(self, inode, name, ctx):
        return await self.view.xattr(inode, name)

    @fuse_errors
    async def listxattr(self, inode, ctx):
        return await self.view.xattr_names(inode)

    # -- the filesystem -----------------------------------------------------------------------------

    @fuse_errors
    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 128 << 10
        s.f_namemax = 255
        return s

    @read_only
    async def setattr(self, inode, attr, fields, fh, ctx): ...

    @read_only
    async def mknod(self, parent_inode, name, mode, rdev, ctx): ...

    @read_only
    async def mkdir(self, parent_inode, name, mode, ctx): ...

    @read_only
    async def unlink(self, parent_inode, name, ctx): ...

    @read_only
    async def rmdir(self, parent_inode, name, ctx): ...

    @read_only
    async def symlink(self, parent_inode, name, target, ctx): ...

    @read_only
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx): ...

    @read_only
    async def link(self, inode, new_parent_inode, new_name, ctx): ...

    @read_only
    async def write(self, fh, off, buf): ...

    @read_only
    async def create(self, parent_inode, name, mode, flags, ctx): ...

    @read_only
    async def setxattr(self, inode, name, value, ctx): ...

    @read_only
    async def removexattr(self, inode, name, ctx): ...

    @fuse_errors
    async def fsync(self, fh, datasync):
        pass  # nothing is ever dirty

    @fuse_errors
    async def fsyncdir(self, fh, datasync):
        pass

