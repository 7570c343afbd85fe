"""Benchmark floor: a minimal pyfuse3 filesystem serving git's listing and bytes from memory.

`python bench_floor.py [--levers] REPO MOUNTPOINT IDS_FILE` loads every object's size and the
bytes of the ids in IDS_FILE (the grep sample) with git, then mounts in the foreground until
unmounted. grep and find through it show what pyfuse3's per-request cost alone allows on this
machine: the floor that gitfs's own figures can approach but not beat.

Plain, it opens, reads and releases every file, as a filesystem does by default. With --levers
(or the single levers --no-open, --push, --big-blocks, --reuse-attrs) it uses what gitfs uses:
open answers ENOSYS so the kernel sends no OPEN and no RELEASE (only with a pyfuse3 that passes
the inode to read(), gitfs/pyfuse3-read-by-inode.patch); once a file has been read, the bytes
of the files after it in its bucket, and of every bucket listed after that, are pushed into the
page cache as soon as readdir has sent their entries (notify_store, from a thread of its own: on
the trio thread it can wait for a page that a pending READ holds, which only the loop could
answer), skipping the files the reader has already passed, and never twice; directories have a 1 MiB st_blksize (glibc sizes its getdents buffer from it, and the kernel its
READDIRPLUS requests); readdir fills one attributes object for every entry; getxattr of a name
outside user.* answers ENOTSUP, which ls remembers for the filesystem (two requests per `ls -l`
instead of two per entry).

Like gitfs, it answers getxattr(MOUNTPOINT, "user.gitfs.status") with JSON: pid, helpers (none),
requests (kernel requests by kind), levers (those in effect) and read_ahead (pushes).
"""

import argparse
import collections
import errno
import json
import os
import queue
import stat
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE
FIRST_OBJECT_INODE = 1 << 16
FILE_TIMEOUT = 3600.0
DIR_TIMEOUT = 1.0
DIRECTORY_BLOCK = 1 << 20  # gitfs/view/mount_view.py's figures
FILE_BLOCK = 128 << 10
PUSH_CHUNK = 1 << 20
STATUS_XATTR = b"user.gitfs.status"

# Every request pyfuse3 hands to Operations; each is counted, those the floor leaves to the base
# class too (they answer ENOSYS, and the kernel stops sending them, as it does for gitfs).
HANDLERS = ("lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
            "symlink", "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir",
            "readdir", "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr",
            "removexattr", "access", "create")


@dataclass(frozen=True)
class Levers:
    no_open: bool = False
    push: bool = False
    big_blocks: bool = False
    reuse_attrs: bool = False
    not_supported: bool = False  # ENOTSUP outside user.*, which ls remembers per filesystem


def load(repo, ids_file):
    """(names and sizes per bucket, {oid: bytes} of the sample) straight from git."""
    listing = subprocess.run(
        ["git", "-C", repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objectsize)"],
        check=True, capture_output=True,
    ).stdout.split()
    buckets = {}
    for oid, size in zip(listing[0::2], listing[1::2]):
        buckets.setdefault(int(oid[:2], 16), []).append((oid[2:], int(size)))
    with open(ids_file, "rb") as f:
        batch = subprocess.run(["git", "-C", repo, "cat-file", "--batch"], stdin=f, check=True,
                               capture_output=True).stdout
    contents, pos = {}, 0
    while pos < len(batch):
        end = batch.index(b"\n", pos)
        oid, _, size = batch[pos:end].split()
        start = end + 1
        contents[oid] = batch[start:start + int(size)]
        pos = start + int(size) + 1
    return buckets, contents


class Pusher(threading.Thread):
    """Pushes bytes into the page cache, off the trio thread (see the module docstring)."""

    def __init__(self, read_at):
        super().__init__(name="floor-push", daemon=True)
        self.items = queue.SimpleQueue()
        self.counts = collections.Counter()
        self.read_at = read_at  # bucket -> the last entry read in it (written by the loop)

    def run(self):
        while (item := self.items.get()) is not None:
            bucket, k, inode, data = item
            if self.read_at.get(bucket, -1) >= k:
                self.counts["passed"] += 1  # read already: pushing it would only cost time
                continue
            view = memoryview(data)
            try:
                for offset in range(0, len(data), PUSH_CHUNK):
                    pyfuse3.notify_store(inode, offset, view[offset:offset + PUSH_CHUNK])
                self.counts["pushed"] += 1
            except OSError:
                self.counts["push_refused"] += 1  # the kernel forgot the inode; a READ will ask

    def stop(self):
        self.items.put(None)


def counted(cls):
    """Counts every request by kind before its handler runs."""
    for name in HANDLERS:
        handler = getattr(cls, name)

        def wrapper(self, *args, _handler=handler, _name=name):
            self.requests[_name] += 1
            return _handler(self, *args)
        setattr(cls, name, wrapper)
    return cls


@counted
class MemoryFs(pyfuse3.Operations):
    def __init__(self, buckets, contents, levers):
        super().__init__()
        self.levers = levers
        self.requests = collections.Counter()
        self.buckets = sorted(buckets)
        self.entries = []  # inode - FIRST_OBJECT_INODE -> (name, size, bytes or None)
        self.position = []  # inode - FIRST_OBJECT_INODE -> (bucket, index in the bucket)
        self.first_inode = {}  # bucket -> inode of its first entry
        self.by_name = {}  # (bucket, name) -> inode
        for b in self.buckets:
            self.first_inode[b] = FIRST_OBJECT_INODE + len(self.entries)
            for k, (name, size) in enumerate(buckets[b]):
                self.by_name[(b, name)] = FIRST_OBJECT_INODE + len(self.entries)
                self.entries.append((name, size, contents.get(b"%02x" % b + name)))
                self.position.append((b, k))
        self.counts = {b: len(buckets[b]) for b in self.buckets}
        self.replied = collections.Counter()  # bucket -> entries readdir has sent (the kernel knows them)
        self.ahead = {}  # bucket -> next entry to push
        self.read_at = {}  # bucket -> the last entry read in it
        self.reading = False  # a file has been read: listings are pushed as they are sent
        self.pusher = Pusher(self.read_at) if levers.push else None
        if self.pusher:
            self.pusher.start()

    def attrs(self, inode):
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == ROOT or 2 <= inode < 2 + 256:
            a.st_mode = stat.S_IFDIR | 0o555
            a.entry_timeout = a.attr_timeout = DIR_TIMEOUT
            if self.levers.big_blocks:
                a.st_blksize = DIRECTORY_BLOCK
        else:
            size = self.entries[inode - FIRST_OBJECT_INODE][1]
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = size
            a.st_blocks = (size + 511) // 512
            a.entry_timeout = a.attr_timeout = FILE_TIMEOUT
            if self.levers.big_blocks:
                a.st_blksize = FILE_BLOCK
        return a

    async def getattr(self, inode, ctx=None):
        return self.attrs(inode)

    async def lookup(self, parent, name, ctx=None):
        if parent == ROOT:
            try:
                bucket = int(name, 16)
            except ValueError:
                raise pyfuse3.FUSEError(errno.ENOENT) from None
            if bucket in self.counts and len(name) == 2:
                return self.attrs(2 + bucket)
        else:
            inode = self.by_name.get((parent - 2, name))
            if inode is not None:
                return self.attrs(inode)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start, token):
        if fh == ROOT:
            for i in range(start, len(self.buckets)):
                b = self.buckets[i]
                if not pyfuse3.readdir_reply(token, b"%02x" % b, self.attrs(2 + b), i + 1):
                    return
            return
        bucket = fh - 2
        first = self.first_inode[bucket]
        reused = self.attrs(first) if self.levers.reuse_attrs and self.counts[bucket] else None
        i = start
        for i in range(start, self.counts[bucket]):
            inode = first + i
            name, size, _ = self.entries[inode - FIRST_OBJECT_INODE]
            if reused is None:
                attrs = self.attrs(inode)
            else:
                attrs = reused
                attrs.st_ino, attrs.st_size, attrs.st_blocks = inode, size, (size + 511) >> 9
            if not pyfuse3.readdir_reply(token, name, attrs, i + 1):
                break
        else:
            i = self.counts[bucket]
        self.replied[bucket] = max(self.replied[bucket], i)
        if self.reading and self.pusher:
            self.push_ahead(bucket, 0)

    async def open(self, inode, flags, ctx):
        if self.levers.no_open:
            raise pyfuse3.FUSEError(errno.ENOSYS)  # no OPEN, no RELEASE from now on
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh, off, size):
        # fh is the inode both ways: handed out by open, or put there by the patched pyfuse3.
        index = fh - FIRST_OBJECT_INODE
        if self.pusher and off == 0:
            bucket, k = self.position[index]
            self.reading = True
            self.read_at[bucket] = max(self.read_at.get(bucket, -1), k)
            self.push_ahead(bucket, k + 1)
        data = self.entries[index][2] or b""
        return data[off:off + size]

    def push_ahead(self, bucket, start):
        """Hands the pusher the bucket's entries from start on that the kernel knows already."""
        start = max(start, self.ahead.get(bucket, 0))
        stop = self.replied[bucket]
        first = self.first_inode[bucket]
        for k in range(start, stop):
            data = self.entries[first + k - FIRST_OBJECT_INODE][2]
            if data:
                self.pusher.items.put((bucket, k, first + k, data))
        self.ahead[bucket] = max(start, stop)

    async def getxattr(self, inode, name, ctx):
        if inode == ROOT and name == STATUS_XATTR:
            return json.dumps(self.status()).encode()
        if self.levers.not_supported and not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.ENOTSUP)  # as gitfs answers security.* and system.*
        raise pyfuse3.FUSEError(errno.ENODATA)

    def status(self):
        return {"pid": os.getpid(), "helpers": [], "requests": dict(self.requests),
                "levers": asdict(self.levers),
                "read_ahead": dict(self.pusher.counts) if self.pusher else {}}

    def close(self):
        if self.pusher:
            self.pusher.stop()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench_floor.py", description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("mountpoint")
    parser.add_argument("ids_file", help="ids whose bytes are served (the others read as empty)")
    parser.add_argument("--levers", action="store_true", help="all five levers below")
    parser.add_argument("--no-open", action="store_true", help="open answers ENOSYS (needs the patched pyfuse3)")
    parser.add_argument("--push", action="store_true", help="push a bucket's bytes into the page cache once it is read")
    parser.add_argument("--big-blocks", action="store_true", help="st_blksize 1 MiB for directories, 128 KiB for files")
    parser.add_argument("--reuse-attrs", action="store_true", help="one attributes object for all entries of a readdir")
    parser.add_argument("--not-supported", action="store_true", help="getxattr outside user.* answers ENOTSUP (ls -l then stops asking)")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv[1:])
    levers = Levers(no_open=args.levers or args.no_open, push=args.levers or args.push,
                    big_blocks=args.levers or args.big_blocks, reuse_attrs=args.levers or args.reuse_attrs,
                    not_supported=args.levers or args.not_supported)
    if levers.no_open and not getattr(pyfuse3, "READ_FH_IS_INODE_WITHOUT_OPEN", False):
        # Without the patch every READ would arrive with fh 0 and no inode: open files instead.
        print("bench_floor.py: pyfuse3 lacks the read-by-inode patch; files are opened", file=sys.stderr)
        levers = Levers(False, levers.push, levers.big_blocks, levers.reuse_attrs, levers.not_supported)
    fs = MemoryFs(*load(args.repo, args.ids_file), levers)
    pyfuse3.init(fs, args.mountpoint, {"ro", "fsname=bench-floor", "subtype=benchfloor", "default_permissions"})
    try:
        trio.run(pyfuse3.main)
    finally:
        fs.close()
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
