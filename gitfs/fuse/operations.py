"""The pyfuse3 handlers: requests become view calls, answers become replies; inodes and errno only.

What the kernel asks, and how often, sets the mount's speed, so the handlers use the protocol's
levers: with a pyfuse3 that passes the inode to read() (gitfs/pyfuse3-read-by-inode.patch),
open() answers ENOSYS and the kernel (FUSE_NO_OPEN_SUPPORT) stops sending OPEN and RELEASE for
every file of the mount: a file read costs one READ, and none once read-ahead has pushed its bytes
into the page cache. flush() is left undefined, so the kernel stops sending FLUSH after the first.
Without the patch the mount opens files the ordinary way, through a handle that names the inode.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os

import pyfuse3

from gitfs.fuse.fuse_errors import fuse_errors, read_only
from gitfs.view.inodes import ROOT_INODE
from gitfs.view.mount_view import Attr, MountView

log = logging.getLogger("gitfs")

DOT_ENTRIES = 2  # "." and "..", offsets 0 and 1 of every directory
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


class Replies:
    """One READDIRPLUS reply, as a namespace's readdir fills it (gitfs/namespaces/namespace.py
    DirectoryReplies). A listing's hot loop shapes one reply entry per kind of entry and sends
    each entry through it with its own inode and size: readdir_reply copies the entry."""

    __slots__ = ("token", "reply")

    def __init__(self, token):
        self.token = token
        self.reply = pyfuse3.readdir_reply

    def add(self, name: bytes, attr: Attr, k: int) -> bool:
        return self.reply(self.token, name, entry_attributes(attr), k + 1 + DOT_ENTRIES)

    shape = staticmethod(entry_attributes)

    def add_shaped(self, name: bytes, entry: pyfuse3.EntryAttributes, inode: int, size: int, k: int) -> bool:
        entry.st_ino = inode
        entry.st_size = size
        entry.st_blocks = (size + 511) >> 9
        return self.reply(self.token, name, entry, k + 1 + DOT_ENTRIES)


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
        listing = await self.view.open_dir(inode, ctx.pid if ctx is not None else 0)
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
        await self.view.readdir(inode, listing, max(start_id - DOT_ENTRIES, 0), Replies(token))

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
        await self.view.getattr(inode)  # a file that vanished fails at open, as it would on disk
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

