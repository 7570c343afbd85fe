"""MNT/.refs: every ref as a symlink to its object (refs_view.py reads them), by directory.

A ref directory's listing and a lookup that misses refresh the table of refs (in a thread); a
lookup that the latest table answers, and a link's target while that table is young, are
answered on the loop.
"""

from __future__ import annotations

import stat

import odb

from gitfs.view.inodes import REFS_NAMESPACE
from gitfs.namespaces.namespace import no_entry
from gitfs.namespaces.node_namespace import EntriesListing, NodeNamespace
from gitfs.namespaces.refs_view import RefLink, RefsDir, RefsView


class RefsNamespace(NodeNamespace):
    name = b".refs"
    directories = (RefsDir,)
    root_node = RefsDir("")

    def __init__(self, view, refs, number: int = REFS_NAMESPACE):
        super().__init__(view, number)
        self.refs = RefsView(refs, view.store.format, view.directory_timeout)

    def attr(self, inode: int, node, size: int = 0, access=None):
        attr = self.view.dir_attr(inode)  # refs change: directory timeouts
        if type(node) is RefLink:
            attr.mode, attr.nlink, attr.size = stat.S_IFLNK | 0o777, 1, size
        return attr

    def known(self, node):
        if type(node) is RefsDir:
            return 0, None
        target = self.refs.known_target(node)  # a young table answers on the loop
        return None if target is None else (len(target), None)

    def stat(self, node):
        target = self.refs.target(node)
        if target is None:
            raise odb.ObjectNotFound(node.name)
        return len(target), None

    async def stat_of(self, node):
        return await self.view.in_thread(self.stat, node)  # reads the ref's files

    async def lookup(self, parent: int, name: bytes):
        node = self.node_of_type(parent, RefsDir)
        # A dict hit in the latest table; a miss (or no table yet) reads the refs again.
        marker, table = self.refs.marker(), self.refs.current()
        found = self.refs.find(table, node, name) if table is not None else None
        if found is None:
            found = await self.view.in_thread(self.refs.lookup, node, name, marker)
        return await self.looked_up(found)

    async def readlink(self, inode: int) -> bytes:
        node = self.node_of_type(inode, RefLink)
        target = self.refs.known_target(node) or await self.view.in_thread(self.refs.target, node)
        if target is None:
            raise no_entry()
        return target

    async def open_dir(self, inode: int):
        node = self.node_of_type(inode, RefsDir)
        entries = await self.view.in_thread(self.refs.list, node)
        self.view.cache.hold("refs", self.refs.nbytes)
        if entries is None:
            raise no_entry()
        return EntriesListing(entries)

    def status(self) -> dict:
        self.view.cache.hold("refs", self.refs.nbytes)
        return {"refs": {"reads": self.refs.reads, "unchanged": self.refs.checks,
                         "refs": len(self.refs.current() or ())}}
