"""A namespace added from outside (gitfs/namespaces/namespace.py): given to MountView, it is served by the
unchanged FUSE handlers, beside the buckets, found by name and listed nowhere."""

from __future__ import annotations

import errno
import json

import pyfuse3
import pytest
import trio

from fake_store import FakeStore
from gitfs.fuse import operations as operations_module
from gitfs.view.inodes import FIRST_ADDED_NAMESPACE, ROOT_INODE, namespace_base
from gitfs.namespaces.namespace import no_entry
from gitfs.fuse.operations import GitOperations
from gitfs.view.mount_view import MountView
from gitfs.engine.workers import WorkerPool

GREETING = b"hello from a namespace\n"


class Greetings:
    """/.hello/greeting: one directory and one file, numbered from the base it is given."""

    def __init__(self, view, base: int):
        self.view = view
        self.dir, self.file = base, base + 1
        self.names = {b".hello": base}
        self.held: dict[int, int] = {}
        self.reads = 0

    def owns(self, inode: int) -> bool:
        return self.dir <= inode <= self.file

    def is_directory(self, inode: int) -> bool:
        return inode == self.dir

    async def lookup_root(self, name: bytes):
        return self.view.dir_attr(self.dir)

    async def lookup(self, parent: int, name: bytes):
        if name != b"greeting":
            raise no_entry()
        return self._file_attr()

    async def getattr(self, inode: int):
        return self.view.dir_attr(inode) if inode == self.dir else self._file_attr()

    def forget(self, inode: int, count: int) -> None:
        self.held[inode] = self.held.get(inode, 0) - count

    async def readlink(self, inode: int) -> bytes:
        raise OSError(errno.EINVAL, "not a symlink")

    async def open_dir(self, inode: int):
        return [(b"greeting", self.file)]

    async def readdir(self, listing, start: int, out):
        for k in range(start, len(listing)):
            if not out.add(listing[k][0], self._file_attr(), k):
                return
            self.held[self.file] = self.held.get(self.file, 0) + 1  # the kernel holds a lookup

    async def read(self, inode: int, offset: int, size: int) -> bytes:
        self.reads += 1
        return GREETING[offset : offset + size]

    def xattrs(self, inode: int) -> dict[bytes, bytes]:
        return {b"user.greeting.language": b"en"} if inode == self.file else {}

    async def object_of(self, inode: int) -> bytes | None:
        return None

    def status(self) -> dict:
        return {"greetings": {"reads": self.reads}}

    def _file_attr(self):
        return self.view.object_attr(self.file, len(GREETING))


@pytest.fixture
def ops():
    store = FakeStore({})
    pool = WorkerPool(store, None, 1)
    view = MountView(store, pool, namespaces=[Greetings])
    yield GitOperations(view, no_open=True)
    pool.close()


def test_a_namespace_is_served_by_the_handlers_as_they_are(ops, monkeypatch):
    replies = []

    def readdir_reply(token, name, attrs, next_id):
        replies.append((bytes(name), attrs.st_ino, attrs.st_size))
        return True
    monkeypatch.setattr(operations_module.pyfuse3, "readdir_reply", readdir_reply)
    greetings = ops.view.namespaces[0]
    base = namespace_base(FIRST_ADDED_NAMESPACE)  # .refs, .tree and .log are 0, 1 and 2

    async def go():
        directory = await ops.lookup(ROOT_INODE, b".hello")
        assert directory.st_ino == base
        fh = await ops.opendir(base, None)
        await ops.readdir(fh, 0, object())
        await ops.releasedir(fh)
        assert [name for name, _, _ in replies] == [b".", b"..", b"greeting"]
        assert replies[2][1:] == (base + 1, len(GREETING))
        assert (await ops.getattr(base + 1, None)).st_size == len(GREETING)
        found = await ops.lookup(base, b"greeting")
        assert (found.st_ino, found.st_size) == (base + 1, len(GREETING))
        assert bytes(await ops.read(base + 1, 6, 4)) == b"from"
        assert await ops.getxattr(base + 1, b"user.greeting.language", None) == b"en"
        assert b"user.greeting.language" in await ops.listxattr(base + 1, None)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(base, b"farewell")
        assert e.value.errno == errno.ENOENT
        await ops.forget([(base + 1, 1)])
        status = json.loads(await ops.getxattr(ROOT_INODE, b"user.gitfs.status", None))
        assert status["greetings"] == {"reads": 1}

        # The root lists the buckets only: grep -r and find never enter a namespace.
        fh = await ops.opendir(ROOT_INODE, None)
        replies.clear()
        await ops.readdir(fh, 0, object())
        assert b".hello" not in [name for name, _, _ in replies]
    trio.run(go)

    assert greetings.held == {base + 1: 0}  # sent once in the listing, forgotten once


def test_namespaces_are_numbered_apart_and_bounded():
    assert namespace_base(1) - namespace_base(0) == namespace_base(2) - namespace_base(1) > 2
    with pytest.raises(ValueError):
        namespace_base(16)
