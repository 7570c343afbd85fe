"""Benchmark floor: a minimal pyfuse3 filesystem serving git's listing and bytes from memory.

`python bench_floor.py REPO MOUNTPOINT IDS_FILE` loads every object's size and the bytes of the
ids in IDS_FILE (the grep sample) with git, then mounts in the foreground until unmounted. grep
and find through it show what pyfuse3's per-request cost alone allows on this machine: the floor
that gitfs's own figures (1) and (2) can approach but not beat.
"""

import errno
import stat
import subprocess
import sys

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE
FIRST_OBJECT_INODE = 1 << 16
FILE_TIMEOUT = 3600.0
DIR_TIMEOUT = 1.0


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


class MemoryFs(pyfuse3.Operations):
    def __init__(self, buckets, contents):
        super().__init__()
        self.buckets = sorted(buckets)
        self.entries = []  # inode - FIRST_OBJECT_INODE -> (name, size, bytes or None)
        self.first_inode = {}  # bucket -> inode of its first entry
        self.by_name = {}  # (bucket, name) -> inode
        for b in self.buckets:
            self.first_inode[b] = FIRST_OBJECT_INODE + len(self.entries)
            for name, size in buckets[b]:
                self.by_name[(b, name)] = FIRST_OBJECT_INODE + len(self.entries)
                self.entries.append((name, size, contents.get(b"%02x" % b + name)))
        self.counts = {b: len(buckets[b]) for b in self.buckets}

    def attrs(self, inode):
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == ROOT or 2 <= inode < 2 + 256:
            a.st_mode = stat.S_IFDIR | 0o555
            a.entry_timeout = a.attr_timeout = DIR_TIMEOUT
        else:
            size = self.entries[inode - FIRST_OBJECT_INODE][1]
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = size
            a.st_blocks = (size + 511) // 512
            a.entry_timeout = a.attr_timeout = FILE_TIMEOUT
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
        for i in range(start, self.counts[bucket]):
            name = self.entries[first + i - FIRST_OBJECT_INODE][0]
            if not pyfuse3.readdir_reply(token, name, self.attrs(first + i), i + 1):
                return

    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh, off, size):
        data = self.entries[fh - FIRST_OBJECT_INODE][2] or b""
        return data[off:off + size]


def main(argv):
    if len(argv) != 4:
        print("usage: bench_floor.py REPO MOUNTPOINT IDS_FILE", file=sys.stderr)
        return 2
    repo, mountpoint, ids_file = argv[1:]
    fs = MemoryFs(*load(repo, ids_file))
    pyfuse3.init(fs, mountpoint, {"ro", "fsname=bench-floor", "subtype=benchfloor", "default_permissions"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
