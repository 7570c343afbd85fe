"""The pyfuse3 handlers called directly (no mount) on an in-memory store."""

from __future__ import annotations

import errno
import hashlib
import logging
import os

import pyfuse3
import pytest
import trio

import odb
from fake_store import FakeStore
from gitfs import file_handles
from gitfs import operations as operations_module
from gitfs.file_handles import StreamedObject, WholeObject
from gitfs.inodes import ROOT_INODE, bucket_inode, natural_inode
from gitfs.operations import GitOperations


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_store(blobs) -> FakeStore:
    return FakeStore({blob_id(b): ("blob", b) for b in blobs})


BLOBS = [b"blob number %d\n" % i for i in range(600)] + [b"", bytes(range(256)) * 1000]


@pytest.fixture
def store():
    return make_store(BLOBS)


def run(fn, *args):
    return trio.run(fn, *args)


def fuse_errno(excinfo) -> int:
    return excinfo.value.errno


async def lookup_object(ops: GitOperations, hex_id: str, length: int | None = None):
    bucket = await ops.lookup(ROOT_INODE, hex_id[:2].encode(), None)
    name = hex_id[2:length].encode()
    return await ops.lookup(bucket.st_ino, name, None)


def test_lookup_getattr_open_read(store):
    ops = GitOperations(store)

    async def go():
        for data in (BLOBS[0], BLOBS[-2], BLOBS[-1]):
            hex_id = blob_id(data)
            attrs = await lookup_object(ops, hex_id)
            assert attrs.st_ino == natural_inode(bytes.fromhex(hex_id))
            assert attrs.st_size == len(data)
            assert attrs.st_mode == 0o100444
            assert (await ops.getattr(attrs.st_ino)).st_size == len(data)
            info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
            assert info.keep_cache
            got = b"".join([bytes(await ops.read(info.fh, off, 4096)) for off in range(0, len(data) + 1, 4096)])
            assert got == data
            await ops.release(info.fh)

    run(go)


def test_directories(store):
    ops = GitOperations(store)

    async def go():
        root = await ops.getattr(ROOT_INODE)
        assert root.st_mode == 0o40555
        bucket = await ops.lookup(ROOT_INODE, blob_id(BLOBS[0])[:2].encode(), None)
        assert bucket.st_mode == 0o40555 and bucket.st_ino == bucket_inode(int(blob_id(BLOBS[0])[:2], 16))
        assert (await ops.lookup(bucket.st_ino, b"..", None)).st_ino == ROOT_INODE
        empty = next(b for b in range(256) if not store.iter_bucket(b))
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(ROOT_INODE, b"%02x" % empty, None)
        assert fuse_errno(e) == errno.ENOENT

    run(go)


@pytest.mark.parametrize("name", [b"zz", b"0", b"000", b"A0", b"ab\x00", b"0" * 39])
def test_bad_names_are_enoent(store, name):
    ops = GitOperations(store)

    async def go():
        bucket = await ops.lookup(ROOT_INODE, blob_id(BLOBS[0])[:2].encode(), None)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(bucket.st_ino, name, None)
        assert fuse_errno(e) == errno.ENOENT

    run(go)


def test_abbreviations_and_ambiguity(store, caplog):
    ops = GitOperations(store)
    ids = sorted(store.objects)
    # Two ids that share their first four hex digits, if this corpus has them; else make the
    # prefix from a shared first three digits by asking for the shortest common one.
    pairs = [(a, b) for a, b in zip(ids, ids[1:]) if a[:4] == b[:4]]
    a, b = pairs[0] if pairs else (ids[0], ids[1])
    common = os.path.commonprefix([a, b])
    assert len(common) >= 2

    async def go():
        attrs = await lookup_object(ops, a, len(common) + 1)
        assert attrs.st_ino == natural_inode(bytes.fromhex(a))
        assert attrs.entry_timeout == 0  # a new object could make it ambiguous later
        if len(common) >= 4:
            with caplog.at_level(logging.WARNING, logger="gitfs"):
                with pytest.raises(pyfuse3.FUSEError) as e:
                    await lookup_object(ops, a, len(common))
            assert fuse_errno(e) == errno.ENOTUNIQ
            assert a in caplog.text and b in caplog.text

    run(go)


def test_ambiguous_prefix_maps_to_enotuniq(caplog):
    ids = ["abcd" + "0" * 36, "abcd" + "1" * 36]
    ops = GitOperations(FakeStore({i: ("blob", b"x") for i in ids}))

    async def go():
        with caplog.at_level(logging.WARNING, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await lookup_object(ops, ids[0], 4)
        assert fuse_errno(e) == errno.ENOTUNIQ
        assert ids[0] in caplog.text and ids[1] in caplog.text

    run(go)


def test_corrupt_object_is_eio_and_logged(store, caplog):
    ops = GitOperations(store)
    bad = blob_id(BLOBS[3])

    async def go():
        attrs = await lookup_object(ops, bad)
        store.corrupt.add(bad)
        with caplog.at_level(logging.ERROR, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.open(attrs.st_ino, os.O_RDONLY, None)
        assert fuse_errno(e) == errno.EIO
        assert bad in caplog.text
        # The loop goes on: other objects still read.
        good = await lookup_object(ops, blob_id(BLOBS[4]))
        info = await ops.open(good.st_ino, os.O_RDONLY, None)
        assert bytes(await ops.read(info.fh, 0, 100)) == BLOBS[4]

    run(go)


def test_unexpected_exception_is_eio_and_logged(store, caplog, monkeypatch):
    ops = GitOperations(store)

    def explode(oid):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(store, "read_size", explode)

    async def go():
        with caplog.at_level(logging.ERROR, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await lookup_object(ops, blob_id(BLOBS[0]))
        assert fuse_errno(e) == errno.EIO
        assert "ZeroDivisionError" in caplog.text

    run(go)


def test_write_flags_and_write_ops_are_erofs(store):
    ops = GitOperations(store)

    async def go():
        attrs = await lookup_object(ops, blob_id(BLOBS[0]))
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.open(attrs.st_ino, flags, None)
            assert fuse_errno(e) == errno.EROFS
        calls = [
            ops.setattr(attrs.st_ino, None, None, None, None),
            ops.mknod(ROOT_INODE, b"x", 0o644, 0, None),
            ops.mkdir(ROOT_INODE, b"x", 0o755, None),
            ops.unlink(ROOT_INODE, b"00", None),
            ops.rmdir(ROOT_INODE, b"00", None),
            ops.symlink(ROOT_INODE, b"x", b"y", None),
            ops.rename(ROOT_INODE, b"a", ROOT_INODE, b"b", 0, None),
            ops.link(attrs.st_ino, ROOT_INODE, b"x", None),
            ops.write(1, 0, b"x"),
            ops.create(ROOT_INODE, b"x", 0o644, os.O_WRONLY, None),
            ops.setxattr(attrs.st_ino, b"user.x", b"1", None),
            ops.removexattr(attrs.st_ino, b"user.git.type", None),
        ]
        for call in calls:
            with pytest.raises(pyfuse3.FUSEError) as e:
                await call
            assert fuse_errno(e) == errno.EROFS

    run(go)


def test_forget_drops_the_inode(store):
    ops = GitOperations(store)

    async def go():
        attrs = await lookup_object(ops, blob_id(BLOBS[0]))
        await lookup_object(ops, blob_id(BLOBS[0]))
        await ops.forget([(attrs.st_ino, 1)])
        assert (await ops.getattr(attrs.st_ino)).st_size == len(BLOBS[0])
        await ops.forget([(attrs.st_ino, 1)])
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.getattr(attrs.st_ino)
        assert fuse_errno(e) == errno.ENOENT
        assert len(ops.inodes) == 0

    run(go)


def test_xattrs(store):
    ops = GitOperations(store)
    loose = next(h for h in sorted(store.objects) if h[-1] in "01234567")
    packed = next(h for h in sorted(store.objects) if h[-1] not in "01234567")

    async def go():
        a = await lookup_object(ops, loose)
        assert await ops.listxattr(a.st_ino, None) == [b"user.git.type", b"user.git.source"]
        assert await ops.getxattr(a.st_ino, b"user.git.source", None) == b"loose"
        p = await lookup_object(ops, packed)
        assert await ops.listxattr(p.st_ino, None) == [b"user.git.type", b"user.git.source",
                                                       b"user.git.offset", b"user.git.delta_base"]
        assert await ops.getxattr(p.st_ino, b"user.git.type", None) == b"blob"
        assert await ops.getxattr(p.st_ino, b"user.git.offset", None) == b"12"
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.getxattr(p.st_ino, b"user.other", None)
        assert fuse_errno(e) == pyfuse3.ENOATTR
        assert await ops.listxattr(ROOT_INODE, None) == []

    run(go)


def test_concurrent_opens_share_one_inflation(store):
    ops = GitOperations(store)
    hex_id = blob_id(BLOBS[-1])

    async def go():
        attrs = await lookup_object(ops, hex_id)
        store.calls.clear()
        handles = []

        async def opener():
            handles.append(await ops.open(attrs.st_ino, os.O_RDONLY, None))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(opener)
        assert store.calls.count("read") == 1
        for info in handles:
            assert bytes(await ops.read(info.fh, 0, 1 << 20)) == BLOBS[-1]
            await ops.release(info.fh)
        assert ops.cache.size_bytes == 0  # released: the kernel's page cache holds it now

    run(go)


def test_big_objects_are_streamed(store, monkeypatch):
    ops = GitOperations(store, cache_size=4096)  # objects over 1 KiB are streamed
    # A small window, so that reading back past it re-opens the stream.
    monkeypatch.setattr(file_handles, "STREAM_WINDOW", 2048)
    monkeypatch.setattr(file_handles, "STREAM_CHUNK", 4096)
    data = BLOBS[-1]

    async def go():
        attrs = await lookup_object(ops, blob_id(data))
        info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
        assert isinstance(ops._handles[info.fh], StreamedObject)
        for off, size in [(0, 1000), (1000, 5000), (100_000, 7), (50, 10), (255_990, 100), (256_000, 10)]:
            assert await ops.read(info.fh, off, size) == data[off:off + size]
        await ops.release(info.fh)
        assert store.stream_log.count("open") == store.stream_log.count("close") == 2  # one restart

    run(go)


def test_small_objects_are_held_whole(store):
    ops = GitOperations(store)

    async def go():
        attrs = await lookup_object(ops, blob_id(BLOBS[0]))
        info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
        assert isinstance(ops._handles[info.fh], WholeObject)

    run(go)


class FakeToken:
    pass


def test_readdir_snapshot_resumes_and_counts_lookups(store, monkeypatch):
    ops = GitOperations(store)
    replies = []
    budget = [0]

    def readdir_reply(token, name, attrs, next_id):
        if budget[0] == 0:
            return False
        budget[0] -= 1
        replies.append((name, attrs.st_ino, attrs.st_size, next_id))
        return True

    monkeypatch.setattr(operations_module.pyfuse3, "readdir_reply", readdir_reply)
    bucket = max(range(256), key=lambda b: len(store.iter_bucket(b)))
    ids = store.iter_bucket(bucket)

    async def go():
        fh = await ops.opendir(bucket_inode(bucket), None)
        # A new object after opendir does not disturb this listing's offsets.
        store.add("%02x" % bucket + "f" * 38, "blob", b"late")
        offset = 0
        while True:
            budget[0] = 3
            before = len(replies)
            await ops.readdir(fh, offset, FakeToken())
            if len(replies) == before:
                break
            offset = replies[-1][3]
        await ops.releasedir(fh)

    run(go)
    assert [r[0] for r in replies] == [h[2:].encode() for h in ids]
    assert [r[2] for r in replies] == [len(store.objects[h][1]) for h in ids]
    assert len(ops.inodes) == len(ids)  # one lookup counted per accepted entry, none for refused ones


def test_read_ahead_follows_a_walk_in_listing_order(store, monkeypatch):
    ops = GitOperations(store)
    monkeypatch.setattr(operations_module.pyfuse3, "readdir_reply", lambda *a: True)
    bucket = max(range(256), key=lambda b: len(store.iter_bucket(b)))
    ids = store.iter_bucket(bucket)
    assert len(ids) >= 4

    async def go():
        fh = await ops.opendir(bucket_inode(bucket), None)
        await ops.readdir(fh, 0, FakeToken())
        for hex_id in ids[:2]:
            attrs = await lookup_object(ops, hex_id)
            info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
            await ops.release(info.fh)
        # Give the loader threads time to deliver what they read ahead.
        with trio.fail_after(10):
            while not ops.cache.peek(bytes.fromhex(ids[3])):
                await trio.sleep(0.01)

    run(go)
