"""The pyfuse3 handlers called directly (no mount), on the FUSE-free view over an in-memory store."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os

import pyfuse3
import pytest
import trio

import odb
from fake_store import FakeStore
from gitfs.fuse import operations as operations_module
from gitfs.engine import streams
from gitfs.view.inodes import ROOT_INODE, bucket_inode, natural_inode
from gitfs.fuse.operations import GitOperations
from gitfs.view.mount_view import MountView
from gitfs.engine.workers import WorkerPool


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_store(blobs) -> FakeStore:
    return FakeStore({blob_id(b): ("blob", b) for b in blobs})


BLOBS = [b"blob number %d\n" % i for i in range(600)] + [b"", bytes(range(256)) * 1000]


class FakeKernel:
    """Records what the view asks of the kernel's caches (from worker threads)."""

    def __init__(self, refuse=()):
        self.pushed: dict[int, bytearray] = {}
        self.forgotten: list = []
        self.refuse = set(refuse)

    def push(self, inode, offset, data):
        if inode in self.refuse:
            raise OSError(errno.ENOENT, "unknown inode")
        buf = self.pushed.setdefault(inode, bytearray())
        assert offset == len(buf)
        buf += data

    def forget_entry(self, parent, name):
        self.forgotten.append(("entry", parent, name))

    def forget_inode(self, inode):
        self.forgotten.append(("inode", inode))


@pytest.fixture
def store():
    return make_store(BLOBS)


@pytest.fixture(params=["threads", "inline"])
def make_ops(request):
    """make_ops(store, no_open=True, cache_size=..., kernel=None) -> GitOperations on local workers;
    each test runs twice: with every load in a worker thread, and with small work on the loop."""
    pools = []

    def make(store, *, no_open: bool = True, cache_size: int = 256 << 20, kernel=None) -> GitOperations:
        pool = WorkerPool(store, None, 2)
        pools.append(pool)
        view = MountView(store, pool, cache_size=cache_size, kernel=kernel, inline=request.param == "inline")
        return GitOperations(view, no_open=no_open)

    yield make
    for pool in pools:
        pool.close()


def run(fn, *args):
    return trio.run(fn, *args)


def fuse_errno(excinfo) -> int:
    return excinfo.value.errno


async def lookup_object(ops: GitOperations, hex_id: str, length: int | None = None):
    bucket = await ops.lookup(ROOT_INODE, hex_id[:2].encode(), None)
    name = hex_id[2:length].encode()
    return await ops.lookup(bucket.st_ino, name, None)


async def read_all(ops: GitOperations, fh: int, size: int) -> bytes:
    return b"".join([bytes(await ops.read(fh, off, 4096)) for off in range(0, size + 1, 4096)])


class FakeToken:
    pass


def capture_readdir(monkeypatch, budget=None):
    """Replaces pyfuse3.readdir_reply: entries land in the returned list; budget[0] limits a call."""
    replies = []

    def readdir_reply(token, name, attrs, next_id):
        if budget is not None:
            if budget[0] == 0:
                return False
            budget[0] -= 1
        replies.append((bytes(name), attrs.st_ino, attrs.st_size, next_id))
        return True

    monkeypatch.setattr(operations_module.pyfuse3, "readdir_reply", readdir_reply)
    return replies


def test_lookup_getattr_read_by_inode(store, make_ops):
    ops = make_ops(store)

    async def go():
        for data in (BLOBS[0], BLOBS[-2], BLOBS[-1]):
            hex_id = blob_id(data)
            attrs = await lookup_object(ops, hex_id)
            assert attrs.st_ino == natural_inode(bytes.fromhex(hex_id))
            assert attrs.st_size == len(data)
            assert attrs.st_mode == 0o100444
            assert (await ops.getattr(attrs.st_ino)).st_size == len(data)
            # With no-open, the kernel's first OPEN gets ENOSYS and reads name the inode.
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.open(attrs.st_ino, os.O_RDONLY, None)
            assert fuse_errno(e) == errno.ENOSYS
            assert await read_all(ops, attrs.st_ino, len(data)) == data

    run(go)


def test_ordinary_opens_without_the_patched_pyfuse3(store, make_ops):
    ops = make_ops(store, no_open=False)

    async def go():
        data = BLOBS[-1]
        attrs = await lookup_object(ops, blob_id(data))
        info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
        assert info.keep_cache and info.fh != attrs.st_ino
        assert await read_all(ops, info.fh, len(data)) == data
        await ops.release(info.fh)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.read(info.fh, 0, 10)
        assert fuse_errno(e) == errno.EBADF

    run(go)


def test_directories(store, make_ops):
    ops = make_ops(store)

    async def go():
        root = await ops.getattr(ROOT_INODE)
        assert root.st_mode == 0o40555
        bucket = await ops.lookup(ROOT_INODE, blob_id(BLOBS[0])[:2].encode(), None)
        assert bucket.st_mode == 0o40555 and bucket.st_ino == bucket_inode(int(blob_id(BLOBS[0])[:2], 16))
        assert (await ops.lookup(bucket.st_ino, b"..", None)).st_ino == ROOT_INODE
        # A name of digits only is the lower-case spelling: the bucket itself, not its alias.
        digits = next(b for b in range(256) if store.iter_bucket(b) and ("%02x" % b).isdigit())
        assert (await ops.lookup(ROOT_INODE, b"%02x" % digits, None)).st_ino == bucket_inode(digits)
        empty = next(b for b in range(256) if not store.iter_bucket(b))
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(ROOT_INODE, b"%02x" % empty, None)
        assert fuse_errno(e) == errno.ENOENT
        # git writes a pack whose objects land in that empty bucket: a lookup by path finds
        # them without anyone listing the root first (a miss refreshes once).
        new = blob_id(b"new in an empty bucket")
        new = "%02x" % empty + new[2:]
        store.add(new, "blob", b"late")
        attrs = await lookup_object(ops, new)
        assert attrs.st_size == 4

    run(go)


def test_upper_case_names_resolve_as_git_accepts_them(store, make_ops):
    ops = make_ops(store)
    hex_id = blob_id(BLOBS[7])

    async def go():
        upper = await ops.lookup(ROOT_INODE, hex_id[:2].upper().encode(), None)
        lower = await ops.lookup(ROOT_INODE, hex_id[:2].encode(), None)
        if hex_id[:2] != hex_id[:2].upper():
            # The upper-case spelling is a directory of its own: the kernel never sees one
            # directory under two names.
            assert upper.st_ino != lower.st_ino
        attrs = await ops.lookup(upper.st_ino, hex_id[2:].upper().encode(), None)
        assert attrs.st_ino == natural_inode(bytes.fromhex(hex_id))
        assert await read_all(ops, attrs.st_ino, len(BLOBS[7])) == BLOBS[7]
        short = await ops.lookup(lower.st_ino, hex_id[2:10].upper().encode(), None)
        assert short.st_ino == attrs.st_ino

    run(go)


@pytest.mark.parametrize("name", [b"zz", b"0", b"000", b"0g", b"ab\x00", b"0" * 39, "é".encode()])
def test_bad_names_are_enoent(store, make_ops, name):
    ops = make_ops(store)

    async def go():
        bucket = await ops.lookup(ROOT_INODE, blob_id(BLOBS[0])[:2].encode(), None)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(bucket.st_ino, name, None)
        assert fuse_errno(e) == errno.ENOENT

    run(go)


def test_abbreviations_and_ambiguity(store, make_ops, caplog):
    ops = make_ops(store)
    ids = sorted(store.objects)
    a, b = next((a, b) for a, b in zip(ids, ids[1:]) if a[:3] == b[:3])
    common = os.path.commonprefix([a, b])

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


def test_ambiguous_names_are_remembered_briefly(make_ops, caplog):
    ids = ["abcd" + "0" * 36, "abcd" + "1" * 36]
    store = FakeStore({i: ("blob", b"x") for i in ids})
    ops = make_ops(store)
    calls = []
    resolve = store.resolve_prefix
    store.resolve_prefix = lambda prefix: calls.append(prefix) or resolve(prefix)

    async def go():
        with caplog.at_level(logging.WARNING, logger="gitfs"):
            for _ in range(50):
                with pytest.raises(pyfuse3.FUSEError) as e:
                    await lookup_object(ops, ids[0], 4)
                assert fuse_errno(e) == errno.ENOTUNIQ
        assert ids[0] in caplog.text and ids[1] in caplog.text

    run(go)
    assert len(calls) == 1  # the store was asked once; the other 49 tries came from memory


def test_corrupt_object_is_eio_on_read_and_logged(store, make_ops, caplog):
    ops = make_ops(store)
    bad = blob_id(BLOBS[3])

    async def go():
        attrs = await lookup_object(ops, bad)
        store.corrupt.add(bad)
        with caplog.at_level(logging.ERROR, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.read(attrs.st_ino, 0, 4096)
        assert fuse_errno(e) == errno.EIO
        assert bad in caplog.text
        # The loop goes on: other objects still read.
        good = await lookup_object(ops, blob_id(BLOBS[4]))
        assert bytes(await ops.read(good.st_ino, 0, 100)) == BLOBS[4]

    run(go)


def test_a_file_the_mount_may_not_read_is_eacces_not_eio(store, make_ops, caplog):
    """odb.AccessDenied is an OdbError, but it says what errno does: the repository keeps the
    file from this process (fuse_errors.py promises that EACCES stays EACCES)."""
    ops = make_ops(store)
    denied = blob_id(BLOBS[5])

    async def go():
        attrs = await lookup_object(ops, denied)
        store.denied.add(denied)
        with caplog.at_level(logging.ERROR, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.read(attrs.st_ino, 0, 4096)
        assert fuse_errno(e) == errno.EACCES
        assert "permission denied" in caplog.text

    run(go)


def test_unexpected_exception_is_eio_and_logged(store, make_ops, caplog, monkeypatch):
    ops = make_ops(store)

    def explode(oid):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(store, "stat", explode)

    async def go():
        with caplog.at_level(logging.ERROR, logger="gitfs"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await lookup_object(ops, blob_id(BLOBS[0]))
        assert fuse_errno(e) == errno.EIO
        assert "ZeroDivisionError" in caplog.text

    run(go)


def test_write_flags_and_write_ops_are_erofs(store, make_ops):
    ops = make_ops(store, no_open=False)

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


def test_forget_holds_nothing_for_objects(store, make_ops):
    ops = make_ops(store)

    async def go():
        attrs = await lookup_object(ops, blob_id(BLOBS[0]))
        await ops.forget([(attrs.st_ino, 1)])
        # The inode leads back to its id by itself: no table was needed to keep it.
        assert (await ops.getattr(attrs.st_ino)).st_size == len(BLOBS[0])

    run(go)


def test_xattrs(store, make_ops, caplog):
    ops = make_ops(store)
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
        # What `ls -l` asks of every entry is answered without touching the store: outside
        # user.* "not supported", which ls remembers for the whole filesystem.
        store.calls.clear()
        for name in (b"security.selinux", b"system.posix_acl_access", b"trusted.x", b"user.other"):
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.getxattr(p.st_ino, name, None)
            assert fuse_errno(e) == (pyfuse3.ENOATTR if name.startswith(b"user.") else errno.ENOTSUP)
        assert store.calls == []
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # answers, not faults
        status = json.loads(await ops.getxattr(ROOT_INODE, b"user.gitfs.status", None))
        assert status["pid"] == os.getpid() and status["cache"]["limit"] == 256 << 20
        assert status["requests"]["getxattr"] >= 5
        assert await ops.listxattr(ROOT_INODE, None) == [b"user.gitfs.status"]

    run(go)


def test_concurrent_reads_share_one_inflation(store, make_ops):
    ops = make_ops(store)
    hex_id = blob_id(BLOBS[-1])

    async def go():
        attrs = await lookup_object(ops, hex_id)
        store.calls.clear()
        got = []

        async def reader():
            got.append(bytes(await ops.read(attrs.st_ino, 0, 1 << 20)))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(reader)
        assert store.calls.count("read") == 1
        assert got == [BLOBS[-1]] * 5
        assert ops.view.cache.size_bytes == 0  # read to the end: the kernel's page cache holds it now

    run(go)


def test_big_objects_are_streamed(store, make_ops, monkeypatch):
    ops = make_ops(store, cache_size=4096)  # objects over 1 KiB are streamed
    # A small window, so that reading back past it restarts from a saved point.
    monkeypatch.setattr(streams, "STREAM_WINDOW", 2048)
    monkeypatch.setattr(streams, "STREAM_AHEAD", 4096)
    monkeypatch.setattr(streams, "POINT_EVERY", 65536)
    data = BLOBS[-1]

    async def go():
        attrs = await lookup_object(ops, blob_id(data))
        for off, size in [(0, 1000), (1000, 5000), (100_000, 7), (50, 10), (255_990, 100), (256_000, 10)]:
            assert bytes(await ops.read(attrs.st_ino, off, size)) == data[off:off + size]
        assert store.stream_log.count("open") == 1  # reading back forks a saved point instead
        assert store.stream_log.count("fork") >= 2
        assert ops.view.cache.size_bytes == 0

    run(go)


def test_memory_is_bounded_by_the_cache_whatever_is_open(make_ops):
    blobs = [bytes([i % 256]) * 20_000 + b"%d" % i for i in range(300)]
    store = make_store(blobs)
    ops = make_ops(store, no_open=False, cache_size=200_000)

    async def go():
        handles = []
        for data in blobs:
            attrs = await lookup_object(ops, blob_id(data))
            info = await ops.open(attrs.st_ino, os.O_RDONLY, None)
            assert bytes(await ops.read(info.fh, 0, 4096)) == data[:4096]  # read, not to the end
            handles.append(info.fh)
            assert ops.view.cache.size_bytes <= 200_000
        # Every handle is still open and still reads right, from the cache or loaded again.
        for fh, data in zip(handles, blobs):
            assert await read_all(ops, fh, len(data)) == data

    run(go)


def test_readdir_snapshot_resumes(store, make_ops, monkeypatch):
    ops = make_ops(store)
    budget = [0]
    replies = capture_readdir(monkeypatch, budget)
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
    # "." and ".." first (ls -a), then the listing; resumed three entries at a time, so a stop
    # falls between the dots and the objects too.
    assert [r[0] for r in replies[:2]] == [b".", b".."]
    assert [r[1] for r in replies[:2]] == [bucket_inode(bucket), pyfuse3.ROOT_INODE]
    assert [r[3] for r in replies] == list(range(1, len(ids) + 3))
    objects = replies[2:]
    assert [r[0] for r in objects] == [h[2:].encode() for h in ids]
    assert [r[1] for r in objects] == [natural_inode(bytes.fromhex(h)) for h in ids]
    assert [r[2] for r in objects] == [len(store.objects[h][1]) for h in ids]


def test_readdir_of_the_root_resumes_across_the_dots(store, make_ops, monkeypatch):
    ops = make_ops(store)
    budget = [0]
    replies = capture_readdir(monkeypatch, budget)

    async def go():
        fh = await ops.opendir(pyfuse3.ROOT_INODE, None)
        offset = 0
        while True:
            budget[0] = 1
            before = len(replies)
            await ops.readdir(fh, offset, FakeToken())
            if len(replies) == before:
                break
            offset = replies[-1][3]
        await ops.releasedir(fh)

    run(go)
    assert [r[0] for r in replies] == [b".", b".."] + [b"%02x" % b for b in store.nonempty_buckets()]
    assert [r[3] for r in replies] == list(range(1, len(replies) + 1))


def test_broken_entries_are_listed_uncached(store, make_ops, monkeypatch):
    replies = capture_readdir(monkeypatch)
    ops = make_ops(store)
    bucket = max(range(256), key=lambda b: len(store.iter_bucket(b)))
    bad = store.iter_bucket(bucket)[1]
    store.corrupt.add(bad)

    async def go():
        fh = await ops.opendir(bucket_inode(bucket), None)
        await ops.readdir(fh, 0, FakeToken())

    run(go)
    assert [r[0] for r in replies[2:]] == [h[2:].encode() for h in store.iter_bucket(bucket)]
    assert replies[3][2] == 0


def test_inode_collisions_get_moved_inodes(make_ops, monkeypatch):
    """Two ids sharing their top 63 bits: neither keeps the natural inode, both stay readable."""
    a = "ab" * 7 + "cd" + "0" * 24
    b = "ab" * 7 + "cd" + "1" * 24
    assert natural_inode(bytes.fromhex(a)) == natural_inode(bytes.fromhex(b))
    store = FakeStore({a: ("blob", b"first"), b: ("blob", b"second"), "ab" + "e" * 38: ("blob", b"other")})
    ops = make_ops(store)
    replies = capture_readdir(monkeypatch)

    async def go():
        fh = await ops.opendir(bucket_inode(0xAB), None)
        await ops.readdir(fh, 0, FakeToken())
        inodes = {name: ino for name, ino, _, _ in replies}
        assert inodes[a[2:].encode()] != inodes[b[2:].encode()]
        assert natural_inode(bytes.fromhex(a)) not in inodes.values()
        assert bytes(await ops.read(inodes[a[2:].encode()], 0, 100)) == b"first"
        assert bytes(await ops.read(inodes[b[2:].encode()], 0, 100)) == b"second"
        assert (await lookup_object(ops, b)).st_ino == inodes[b[2:].encode()]
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.getattr(natural_inode(bytes.fromhex(a)))
        assert fuse_errno(e) == errno.ENOENT

    run(go)


def test_read_ahead_pushes_a_walk_into_the_page_cache(monkeypatch, make_ops):
    blobs = [b"walked blob %d\n" % i * 50 for i in range(3000)]
    store = make_store(blobs)
    kernel = FakeKernel()
    ops = make_ops(store, kernel=kernel)
    capture_readdir(monkeypatch)
    bucket = max(range(256), key=lambda b: len(store.iter_bucket(b)))
    ids = store.iter_bucket(bucket)
    assert len(ids) >= 8

    async def go():
        fh = await ops.opendir(bucket_inode(bucket), None)
        await ops.readdir(fh, 0, FakeToken())
        reads = 0
        for k, hex_id in enumerate(ids):
            inode = natural_inode(bytes.fromhex(hex_id))
            if k >= 2:
                # What read-ahead pushed, the kernel serves without asking: give the workers a
                # moment, as a slower reader would.
                with trio.fail_after(10):
                    while inode not in kernel.pushed and not ops.view.cache.get(bytes.fromhex(hex_id)):
                        await trio.sleep(0.005)
            if inode in kernel.pushed:
                assert bytes(kernel.pushed[inode]) == store.objects[hex_id][1]
                continue
            reads += 1
            data = bytes(await ops.read(inode, 0, 1 << 20))
            assert data == store.objects[hex_id][1]
        return reads

    reads = run(go)
    # Only the first two reads (before the walk shows) and a tripwire every 32 objects reach
    # the mount; everything else was pushed.
    assert reads <= 2 + len(ids) // 32 + 1
    assert len(kernel.pushed) >= len(ids) - reads


def test_vanished_objects_are_forgotten_by_the_kernel(store, make_ops, monkeypatch):
    kernel = FakeKernel()
    ops = make_ops(store, kernel=kernel)
    capture_readdir(monkeypatch)
    bucket = max(range(256), key=lambda b: len(store.iter_bucket(b)))
    gone = store.iter_bucket(bucket)[0]

    async def go():
        fh = await ops.opendir(bucket_inode(bucket), None)
        await ops.readdir(fh, 0, FakeToken())
        store.remove(gone)  # git gc pruned it
        with pytest.raises(pyfuse3.FUSEError) as e:
            await lookup_object(ops, gone)
        assert fuse_errno(e) == errno.ENOENT
        with trio.fail_after(10):
            while ("inode", natural_inode(bytes.fromhex(gone))) not in kernel.forgotten:
                await trio.sleep(0.01)

    run(go)
    assert ("entry", bucket_inode(bucket), gone[2:].encode()) in kernel.forgotten
    assert len(kernel.forgotten) == 2  # only the object that went


def test_errors_keep_their_type_across_the_store_boundary():
    # The helper protocol sends odb's errors whole: a pickled round trip keeps every field.
    import pickle

    e = odb.CorruptObject("/x.pack", 12, "flipped bytes", oid="ab" * 20)
    f = pickle.loads(pickle.dumps(e))
    assert (type(f), f.path, f.offset, f.reason, f.oid, str(f)) == (type(e), e.path, e.offset, e.reason, e.oid, str(e))
    a = pickle.loads(pickle.dumps(odb.AmbiguousPrefix("abcd", ["abcd1", "abcd2"])))
    assert a.candidates == ["abcd1", "abcd2"]


@pytest.mark.parametrize("inline", [True, False])
def test_small_work_is_done_on_the_loop(inline):
    big = bytes(range(256)) * 1024  # 256 KiB: over INLINE_MAX, made by a worker either way
    store = make_store([BLOBS[0], big])
    pool = WorkerPool(store, None, 1)
    view = MountView(store, pool, inline=inline)
    ops = GitOperations(view, no_open=True)

    async def go():
        small = await lookup_object(ops, blob_id(BLOBS[0]))
        assert bytes(await ops.read(small.st_ino, 0, 4096)) == BLOBS[0]
        large = await lookup_object(ops, blob_id(big))
        got = [bytes(await ops.read(large.st_ino, off, 4096)) for off in range(0, len(big), 4096)]
        assert b"".join(got) == big

    try:
        run(go)
    finally:
        pool.close()
    if inline:
        # Two lookups and the small object's bytes; the big one's size only, then a worker.
        assert view.on_loop_count == 4 and view.counts["loads_waited"] == 1, view.counts
    else:
        assert view.on_loop_count == 0 and view.counts["loads_waited"] == 2, view.counts
