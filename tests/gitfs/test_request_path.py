"""The compiled request path (gitfs/fuse/_request_path.c) against the Python path and git.

Requests are handed to RequestPath.handle() as the kernel writes them, with a file for the reply:
no mount is needed. Every object of the fixtures is looked up and read both ways; what the C side
answers must be byte for byte what the Python path answers (and git's bytes); what it cannot
answer exactly (upper case, short names, ids outside the multi-pack-index, REF_DELTA chains,
damage, moved inodes) it must leave alone, writing nothing; and no bytes a request may hold
crash it.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import tempfile

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import damage
import odb
from gitfs import features
from gitfs.fuse import compiled_requests
from gitfs.view.inodes import FIRST_BUCKET_INODE, bucket_inode, natural_inode
from gitfs.view.mount_view import MountView
from gitfs.engine.workers import WorkerPool

# No patched pyfuse3 is needed here (requests are handed over directly): the module and the engine.
pytestmark = pytest.mark.skipif(compiled_requests._request_path is None or features.engine_accelerated() is None,
                                reason="the compiled request path or odb's C engine is not built")

FUSE_LOOKUP, FUSE_READ, FUSE_GETXATTR = 1, 15, 22
IN_HEADER = struct.Struct("<IIQQIIIHH")
OUT_HEADER = struct.Struct("<IiQ")
ENTRY_OUT = struct.Struct("<QQQQII" + "QQQQQQIIIIIIIIII")
READ_IN = struct.Struct("<QQIIQII")


def request(opcode: int, nodeid: int, body: bytes, unique: int = 7) -> bytes:
    return IN_HEADER.pack(IN_HEADER.size + len(body), opcode, unique, nodeid, 0, 0, 0, 0, 0) + body


def lookup_request(bucket: int, rest: str) -> bytes:
    return request(FUSE_LOOKUP, bucket_inode(bucket), rest.encode() + b"\0")


def read_request(inode: int, offset: int = 0, size: int = 128 << 10, fh: int = 0) -> bytes:
    return request(FUSE_READ, inode, READ_IN.pack(fh, offset, size, 0, 0, 0, 0))


def getxattr_request(inode: int, name: bytes, size: int = 128) -> bytes:
    return request(FUSE_GETXATTR, inode, struct.pack("<II", size, 0) + name + b"\0")


class Served:
    """A view over a repository and its compiled request path, with a file the replies go to."""

    def __init__(self, path):
        self.store = odb.open(str(path))
        self.pool = WorkerPool(self.store, None, 1)
        self.view = MountView(self.store, self.pool)
        self.compiled = compiled_requests.CompiledRequests(self.view, lambda capsule: None)
        self.compiled.start()
        self.out = tempfile.TemporaryFile()

    def close(self):
        self.compiled.close()
        self.pool.close()
        self.store.close()
        self.out.close()

    def handle(self, req: bytes):
        """(whether it was answered, the reply's error, its payload); nothing written if not."""
        self.out.seek(0)
        self.out.truncate()
        done = self.compiled.path.handle(req, self.out.fileno())
        self.out.seek(0)
        written = self.out.read()
        if not done:
            assert written == b"", "a declined request must leave no reply"
            return False, None, None
        length, error, unique = OUT_HEADER.unpack_from(written)
        assert length == len(written) and unique == IN_HEADER.unpack_from(req)[2]
        return True, error, written[OUT_HEADER.size:]

    def lookup(self, oid: str):
        return self.handle(lookup_request(int(oid[:2], 16), oid[2:]))

    def python_attr(self, oid: str):
        return trio.run(self.view.lookup, bucket_inode(int(oid[:2], 16)), oid[2:].encode())

    def python_attr_root(self, name: bytes):
        return trio.run(self.view.lookup, 1, name)

    def python_bytes(self, inode: int, size: int) -> bytes:
        return bytes(trio.run(self.view.read, inode, 0, size))

    def python_xattr(self, inode: int, name: bytes):
        """(value, 0) or (None, errno), as the Python path answers."""
        try:
            return trio.run(self.view.xattr, inode, name), 0
        except OSError as e:
            return None, e.errno

    def check_xattr(self, inode: int, name: bytes) -> bool:
        """Whether C answered GETXATTR (as Python does, at every buffer size); False: declined."""
        value, error = self.python_xattr(inode, name)
        done, got_error, payload = self.handle(getxattr_request(inode, name))
        if not done:
            return False
        assert (got_error, payload or None) == ((-error, None) if error else (0, value))
        if not error:
            done, got_error, payload = self.handle(getxattr_request(inode, name, 0))  # the size, first
            assert done and got_error == 0 and struct.unpack("<II", payload) == (len(value), 0)
            done, got_error, payload = self.handle(getxattr_request(inode, name, len(value) - 1))
            assert done and got_error == -errno.ERANGE and payload == b""
        return True


@pytest.fixture
def served():
    made = []

    def make(path) -> Served:
        s = Served(path)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def check_entry(payload: bytes, attr) -> None:
    (nodeid, generation, entry_valid, attr_valid, entry_nsec, attr_nsec, ino, size, blocks, atime, mtime, ctime,
     atime_ns, mtime_ns, ctime_ns, mode, nlink, uid, gid, rdev, blksize, flags) = ENTRY_OUT.unpack(payload)
    assert (nodeid, ino, size, mode, nlink, uid, gid, blksize) == (attr.inode, attr.inode, attr.size, attr.mode,
                                                                   attr.nlink, attr.uid, attr.gid, attr.blksize)
    assert (entry_valid, attr_valid, entry_nsec, attr_nsec) == (int(attr.timeout), int(attr.timeout), 0, 0)
    assert blocks == (size + 511) >> 9 and generation == 0 and rdev == 0 and flags == 0
    for seconds, nanos in ((atime, atime_ns), (mtime, mtime_ns), (ctime, ctime_ns)):
        assert seconds * 10**9 + nanos == attr.mtime_ns


@pytest.mark.parametrize("name", ["bare", "midx", "sha256"])
def test_every_object_is_answered_as_python_and_git_answer_it(served, fixture_repo, name):
    repo = fixture_repo(name)
    s = served(repo.path)
    assert s.compiled.state == "on"
    git = repo.git
    truth = {oid: data for oid, kind, data in git.contents(git.ids())}
    index = s.store._main.packs.served_index()[0]
    in_index = {index.ids.id_at(i).hex() for i in range(index.count)}
    answered = 0
    for oid, data in truth.items():
        done, error, payload = s.lookup(oid)
        inode = natural_inode(bytes.fromhex(oid))
        assert s.check_xattr(inode, b"user.git.type") == (oid in in_index)  # found by its inode alone
        # The inode's id, as Python's prefix search finds it (ObjectInodes.oid_of asks first).
        assert s.compiled.path.oid_of(inode) == (bytes.fromhex(oid) if oid in in_index else None)
        assert s.check_xattr(inode, b"security.selinux") and s.check_xattr(inode, b"system.posix_acl_access")
        assert not s.check_xattr(inode, b"user.git.source") and not s.check_xattr(inode, b"user.nothing")
        if not done:
            assert oid not in in_index
            continue
        answered += 1
        assert error == 0
        check_entry(payload, s.python_attr(oid))
        done, error, body = s.handle(read_request(inode))
        if len(data) > compiled_requests.INLINE_MAX:
            assert not done
            continue
        assert done and error == 0 and body == data[: 128 << 10] == s.python_bytes(inode, 128 << 10)[: len(body)]
        # Any offset and size, as the kernel may ask them.
        for offset, size in ((1, 5), (len(data) // 2, 4096), (len(data), 10), (len(data) + 4096, 4096)):
            done, error, body = s.handle(read_request(inode, offset, size))
            assert done and body == data[offset : offset + size]
    # Every id of the index (these have no REF_DELTA, no shared inode), and only those.
    assert answered == len(in_index & truth.keys()) > 0


@pytest.mark.parametrize("name", ["bare", "midx", "sha256"])
def test_buckets_are_looked_up_as_python_looks_them_up(served, fixture_repo, name):
    s = served(fixture_repo(name).path)
    index = s.store._main.packs.served_index()[0]
    answered = 0
    for b in range(256):
        hexname = b"%02x" % b
        done, error, payload = s.handle(request(FUSE_LOOKUP, 1, hexname + b"\0"))
        lo, hi = index.ids.bucket_range(b)
        assert done == (hi > lo)  # one the index holds nothing of is Python's (loose objects, a refresh)
        if done:
            answered += 1
            assert error == 0
            check_entry(payload, s.python_attr_root(hexname))
        assert not s.handle(request(FUSE_LOOKUP, 1, hexname.upper() + b"\0"))[0] or hexname.isdigit()
    assert answered > 0
    # A chmod shows from the next root listing, in C too.
    s.view.list_root()
    hexname = next(b"%02x" % b for b in range(256) if index.ids.bucket_range(b)[1] > index.ids.bucket_range(b)[0])
    s.view.root_access = s.view.root_access._replace(mode=0o500, mtime_ns=123456789012345678)
    for told in s.view.root_watchers:
        told(s.view.root_access)
    done, error, payload = s.handle(request(FUSE_LOOKUP, 1, hexname + b"\0"))
    check_entry(payload, s.python_attr_root(hexname))


def test_what_it_cannot_answer_exactly_is_left_to_python(served, fixture_repo):
    repo = fixture_repo("midx")
    s = served(repo.path)
    git = repo.git
    ids = git.ids()
    packed = [oid for oid in ids if s.lookup(oid)[0]]
    assert packed
    oid = packed[0]
    bucket, rest = int(oid[:2], 16), oid[2:]
    assert not s.handle(lookup_request(bucket, rest.upper()))[0]  # another spelling: an alias in Python
    assert not s.handle(lookup_request(bucket, rest[:10]))[0]  # abbreviated
    assert not s.handle(request(FUSE_LOOKUP, bucket_inode(bucket, alias=True), rest.encode() + b"\0"))[0]
    assert not s.handle(lookup_request(bucket, "0" * len(rest)))[0]  # not in the index: Python says ENOENT
    assert not s.handle(request(FUSE_LOOKUP, 1, oid.encode() + b"\0"))[0]  # the root
    assert not s.handle(request(FUSE_LOOKUP, bucket_inode(bucket), rest.encode()))[0]  # no NUL
    inode = natural_inode(bytes.fromhex(oid))
    assert not s.handle(read_request(inode, fh=3))[0]  # an opened file: Python's handle
    assert not s.handle(read_request(inode + 2))[0]  # never looked up here
    assert not s.handle(request(FUSE_READ, inode, b"\0" * 8))[0]  # short
    assert not s.handle(request(26, 1, b""))[0]  # another opcode (INIT)
    assert not s.handle(getxattr_request(1, b"user.gitfs.status"))[0]  # the root's status: Python's
    assert not s.handle(getxattr_request(1 << 63 | 5, b"user.git.type"))[0]  # a dynamic inode (.tree, .refs)
    assert not s.handle(getxattr_request(bucket_inode(bucket), b"user.git.type"))[0]  # a bucket
    assert not s.handle(request(FUSE_GETXATTR, inode, struct.pack("<II", 128, 0) + b"user.git.type"))[0]  # no NUL
    # Objects outside the index (loose, the pack outside it) are Python's, whatever their inode.
    outside = [o for o in ids if o not in packed]
    assert outside and not any(s.lookup(o)[0] for o in outside)


def test_a_moved_inode_stops_the_compiled_answers_until_the_next_snapshot(served, fixture_repo):
    s = served(fixture_repo("midx").path)
    oid = next(o for o in fixture_repo("midx").git.ids() if s.lookup(o)[0])
    s.view.moved.move(bytes.fromhex(oid))  # as a collision found by Python would
    assert not s.lookup(oid)[0]
    assert s.compiled.path.oid_of(natural_inode(bytes.fromhex(oid))) is None
    s.compiled.watch()  # the loop's next look renews the snapshot; the moved id stays Python's
    assert s.compiled.state == "on"
    assert not s.lookup(oid)[0]
    assert not s.handle(read_request(natural_inode(bytes.fromhex(oid))))[0]
    assert not s.handle(getxattr_request(natural_inode(bytes.fromhex(oid)), b"user.git.type"))[0]


def test_ids_sharing_a_natural_inode_with_one_outside_the_index_are_left_to_python(served, repo_copy):
    repo = repo_copy("midx")
    s = served(repo.path)
    oid = next(o for o in repo.git.ids() if s.lookup(o)[0])
    # A loose object whose id differs in the 64th bit only (made up: its bytes are never read).
    raw = bytes.fromhex(oid)
    twin = raw[:7] + bytes([raw[7] ^ 1]) + raw[8:]
    assert natural_inode(twin) == natural_inode(raw) and twin != raw
    damage.write_loose(repo.objects_dir, twin.hex(), b"blob 1\0x")
    s.store.refresh()
    s.compiled.watch()
    assert not s.lookup(oid)[0]
    assert not s.handle(getxattr_request(natural_inode(raw), b"user.git.type"))[0]
    assert s.compiled.path.oid_of(natural_inode(raw)) is None  # shared: Python's search says so


def test_ref_delta_chains_and_damage_are_left_to_python(served, repo_copy):
    repo = repo_copy("ref-delta")
    subprocess.run(["git", "-C", str(repo.git_dir), "multi-pack-index", "write"], check=True, capture_output=True)
    s = served(repo.path)
    assert s.compiled.state == "on"
    bases = damage.delta_bases(repo.git_dir)
    assert bases
    for oid in bases:  # every delta here is a REF_DELTA: its base is found by id, in Python
        done, error, payload = s.lookup(oid)  # its size is its own header's
        assert done and error == 0
        check_entry(payload, s.python_attr(oid))
        assert not s.handle(read_request(natural_inode(bytes.fromhex(oid))))[0]
        assert not s.handle(getxattr_request(natural_inode(bytes.fromhex(oid)), b"user.git.type"))[0]
    whole = [o for o in repo.git.ids() if o not in bases and s.lookup(o)[0]]
    assert whole  # the bases themselves are plain entries
    # Damage in one entry: C leaves its READ to Python, which reports it.
    idx = next(repo.objects_dir.glob("pack/*.idx"))
    pack = idx.with_suffix(".pack")
    spans = damage.entry_spans(idx, pack.stat().st_size)
    victim = max(whole, key=lambda o: spans[o][1] - spans[o][0])
    start, end = spans[victim]
    damage.flip(pack, (start + end) // 2)
    s2 = served(repo.path)
    done, _, _ = s2.lookup(victim)
    if done:  # the header still reads; the data does not
        assert not s2.handle(read_request(natural_inode(bytes.fromhex(victim))))[0]


def test_a_repository_without_a_multi_pack_index_is_all_python(served, fixture_repo):
    repo = fixture_repo("ofs-delta")
    s = served(repo.path)
    assert s.compiled.state == "no multi-pack-index"
    oid = repo.git.ids()[0]
    assert not s.lookup(oid)[0]


def test_a_repository_found_gone_is_all_python(served, fixture_repo):
    repo = fixture_repo("midx")
    s = served(repo.path)
    oid = next(o for o in repo.git.ids() if s.lookup(o)[0])
    s.store.gone = "deleted"  # as Store.follow_moves finds it
    s.compiled.watch()
    assert s.compiled.state == "the repository is gone"
    assert not s.lookup(oid)[0]


def test_verify_is_all_python(fixture_repo):
    store = odb.open(str(fixture_repo("midx").path), verify=True)
    pool = WorkerPool(store, None, 1)
    try:
        compiled = compiled_requests.CompiledRequests(MountView(store, pool), lambda capsule: None)
        compiled.start()
        assert "--verify" in compiled.state
    finally:
        pool.close()
        store.close()


def test_counts_and_the_capsule(served, fixture_repo):
    s = served(fixture_repo("bare").path)
    oid = next(o for o in fixture_repo("bare").git.ids() if s.lookup(o)[0])
    s.handle(read_request(natural_inode(bytes.fromhex(oid))))
    s.lookup("ff" * 20)
    counts = s.compiled.status()
    assert counts["state"] == "on" and counts["lookups"] >= 1 and counts["reads"] == 1 and counts["declined"] >= 1
    assert type(s.compiled.path.capsule()).__name__ == "PyCapsule"


def test_threads_answering_while_the_snapshot_is_renewed_get_every_byte_right(served, fixture_repo):
    """pyfuse3's request threads call handle() concurrently, and the loop renews the snapshot
    under them: every answer must still be whole and right, or a clean decline."""
    import threading

    repo = fixture_repo("bare")
    s = served(repo.path)
    truth = {oid: data for oid, kind, data in repo.git.contents(repo.git.ids())}
    errors, answered = [], [0]
    stop = threading.Event()

    def reader(k):
        with tempfile.TemporaryFile() as out:
            while not stop.is_set():
                for oid, data in truth.items():
                    for req in (lookup_request(int(oid[:2], 16), oid[2:]), read_request(natural_inode(bytes.fromhex(oid)))):
                        out.seek(0)
                        out.truncate()
                        done = s.compiled.path.handle(req, out.fileno())
                        out.seek(0)
                        written = out.read()
                        if not done:
                            if written:
                                errors.append(("declined but wrote", oid))
                            continue
                        answered[0] += 1
                        if req[4] == FUSE_READ and written[OUT_HEADER.size:] != data[: 128 << 10]:
                            errors.append(("wrong bytes", oid))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(200):
            s.compiled.renew()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and answered[0] > 0


@pytest.fixture(scope="module")
def hostile_target(fixture_repo):
    s = Served(fixture_repo("bare").path)
    yield s, fixture_repo("bare").git.ids()
    s.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opcode=st.sampled_from([FUSE_LOOKUP, FUSE_READ, FUSE_GETXATTR, 0, 3, 26, 44, 0xFFFFFFFF]),
       nodeid=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 600)),
       body=st.binary(max_size=80), pick=st.integers(0, 10**6), cut=st.integers(0, 60),
       claimed=st.one_of(st.none(), st.integers(0, 2**32 - 1)), extlen=st.integers(0, 3))
def test_hostile_requests_are_declined_or_answered_whole(hostile_target, opcode, nodeid, body, pick, cut,
                                                          claimed, extlen):
    """Whatever the bytes of a request (the kernel's, but the code must not trust them to be
    well formed): no crash, nothing written when declined, one whole reply when answered."""
    s, ids = hostile_target
    oid = ids[pick % len(ids)]
    if pick % 3 == 0:  # sometimes a real name, cut anywhere, under its real bucket
        body = oid[2:].encode()[: len(oid) - 2 - cut % 5] + b"\0" + body[:cut]
        nodeid = bucket_inode(int(oid[:2], 16))
    req = IN_HEADER.pack(IN_HEADER.size + len(body) if claimed is None else claimed, opcode, 9, nodeid,
                         0, 0, 0, extlen, 0) + body
    done, error, payload = s.handle(req[: len(req) - cut % 7] if pick % 5 == 0 else req)
    if done:
        assert error in (0, -errno.ENOTSUP, -errno.ERANGE)
