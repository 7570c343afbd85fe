"""MNT/.log/<rev>: a revision's first-parent history, newest first, as symlinks into .tree.

`.log` itself lists nothing. A <rev> directory lists its commits as they are walked: one chunk
of commits per READDIR (log_view.py reads them in a thread), so the first entries are out
after FIRST_CHUNK commits however long the history.
"""

from __future__ import annotations

import stat

from gitfs.view.inodes import LOG_NAMESPACE
from gitfs.namespaces.log_view import LogDir, LogLink, LogListing, LogView, chunk_after, entry_name, link_target
from gitfs.namespaces.node_namespace import EntriesListing, NodeNamespace


class LogNamespace(NodeNamespace):
    name = b".log"
    directories = (LogDir,)

    def __init__(self, view, refs, number: int = LOG_NAMESPACE):
        super().__init__(view, number)
        self.logs = LogView(view.store, refs)

    def attr(self, inode: int, node, size: int = 0, access=None):
        if type(node) is LogLink:
            attr = self.view.object_attr(inode, size)
            attr.mode, attr.nlink = stat.S_IFLNK | 0o777, 1
        else:
            attr = self.view.dir_attr(inode)
            attr.timeout = self.view.object_timeout  # a history never changes
        if node is not None and node.mtime_ns is not None:
            attr.mtime_ns = node.mtime_ns
        return attr

    def known(self, node):
        if type(node) is LogLink:
            return len(link_target(node.commit)), None
        return 0, None

    async def lookup(self, parent: int, name: bytes):
        if parent == self.root:
            attr = await self.looked_up(await self.view.in_thread(self.logs.resolve, name))
            attr.timeout = self.view.directory_timeout  # the revision may move: ask again soon
            return attr
        node = self.node_of_type(parent, LogDir)
        return await self.looked_up(await self.view.in_thread(self.logs.lookup, node, name))

    async def readlink(self, inode: int) -> bytes:
        return link_target(self.node_of_type(inode, LogLink).commit)

    async def open_dir(self, inode: int):
        if inode == self.root:
            return EntriesListing([])
        node = self.node_of_type(inode, LogDir)
        return LogListing(self.logs.walk(node.commit))

    async def entries(self, listing, start: int):
        """Entries of a history as far as it is walked, after walking one more chunk (in a
        thread) if readdir is at its end. One chunk per request, and a reply shorter than the
        kernel's buffer: the kernel hands what it got to getdents and asks again, so the first
        entries are out after FIRST_CHUNK commits, however long the history (an empty reply is
        the end)."""
        if type(listing) is not LogListing:
            async for entry in super().entries(listing, start):
                yield entry
            return
        walk, k = listing.walk, start
        if k >= len(walk) and not walk.done:
            await self.view.in_thread(walk.extend, k + chunk_after(k))
        stop = len(walk)
        while k < stop:
            oid = walk.oid(k)
            node = LogLink(oid, walk.seconds[k] * 1_000_000_000)
            yield k, entry_name(k, oid), self.attr(self.inodes.inode_for(node), node, len(link_target(oid)))
            k += 1

    async def object_of(self, inode: int) -> bytes | None:
        node = self.node(inode)
        return node.commit if type(node) is LogLink else None
