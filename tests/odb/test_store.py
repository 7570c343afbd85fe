"""odb's public store API against git, on every fixture repository: read, headers, locate,
streams, listing, opening, and refresh after git changes the repository."""

from __future__ import annotations

import os
import subprocess
import threading
import zlib
from pathlib import Path

import pytest

import odb
from oracle import Git, git_env


@pytest.fixture
def store(any_repo):
    s = odb.open(any_repo.path)
    yield s
    s.close()


def pack_offsets(git: Git, pack: Path) -> dict[str, int]:
    out = git.run_bytes("show-index", input=pack.with_suffix(".idx").read_bytes()).decode()
    return {line.split()[1]: int(line.split()[0]) for line in out.splitlines()}


def pack_delta_bases(git: Git, pack: Path) -> dict[str, str | None]:
    """id -> delta base id (None when stored whole), as `git verify-pack -v` reports them."""
    out = git.run("verify-pack", "-v", str(pack.with_suffix(".idx")))
    bases = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[1] in ("commit", "tree", "blob", "tag"):
            bases[fields[0]] = fields[6] if len(fields) == 7 else None
    return bases


def all_object_dirs(repo) -> list[Path]:
    """The repository's objects directory followed by every alternate, recursively."""
    dirs, todo = [], [repo.objects_dir]
    while todo:
        d = todo.pop(0)
        dirs.append(d)
        alt = d / "info" / "alternates"
        if alt.exists():
            todo.extend((d / line).resolve() if not line.startswith("/") else Path(line)
                        for line in alt.read_text().split())
    return dirs


# ---- reading ------------------------------------------------------------------------------------


def test_read_every_object_byte_exact(any_repo, store):
    git = any_repo.git
    ids = git.ids()
    count = 0
    for oid, kind, data in git.contents(ids):
        assert store.read(oid) == (kind, data), oid
        count += 1
    assert count == len(ids)


def test_read_accepts_raw_ids(any_repo, store):
    for oid, kind, data in any_repo.git.contents(any_repo.git.ids()[:50]):
        assert store.read(bytes.fromhex(oid)) == (kind, data)


def test_read_header_every_object(any_repo, store):
    for oid, (kind, size) in any_repo.git.objects().items():
        assert store.read_header(oid) == (kind, size), oid


def test_read_size_every_object(any_repo, store):
    for oid, (_, size) in any_repo.git.objects().items():
        assert store.read_size(oid) == size, oid


def test_read_size_of_a_delta_does_not_walk_its_chain(any_repo, store):
    """As `git cat-file -s`: the size is the delta's own claim; the chain is read only to read."""
    objects = any_repo.git.objects()
    deltas = [oid for oid in objects if store.locate(oid).delta_base is not None]
    for oid in deltas[:20]:
        store._reader._kinds_epoch = object()  # forget every typed entry
        calls = []
        original = store._reader.kind
        store._reader.kind = lambda *a: calls.append(a) or original(*a)
        try:
            assert store.read_size(oid) == objects[oid][1]
        finally:
            del store._reader.kind
        assert not calls


def test_missing_object_is_not_found(any_repo, store):
    hex_len = store.format.hex_len
    absent = next(p for p in ("0" * hex_len, "f" * hex_len, "1" * hex_len)
                  if p not in any_repo.git.objects())
    for call in (store.read, store.read_header, store.locate, store.open_stream):
        with pytest.raises(odb.ObjectNotFound):
            call(absent)
    with pytest.raises(odb.ObjectNotFound):
        store.read(bytes.fromhex(absent))


@pytest.mark.parametrize("bad", ["", "xyz", "0" * 39, "0" * 41, "g" * 40, b"\x00" * 19])
def test_malformed_ids_are_not_found(fixture_repo, bad):
    with odb.open(fixture_repo("loose").path) as s:
        with pytest.raises(odb.ObjectNotFound):
            s.read(bad)


def test_open_stream_equals_read(any_repo, store):
    for oid, kind, data in any_repo.git.contents(any_repo.git.ids()):
        stream = store.open_stream(oid)
        try:
            assert (stream.kind, stream.size) == (kind, len(data)), oid
            parts = []
            while chunk := stream.read(65536):
                assert len(chunk) <= 65536
                parts.append(chunk)
            assert b"".join(parts) == data, oid
            assert stream.read(10) == b""
        finally:
            stream.close()


# ---- locate -------------------------------------------------------------------------------------


def test_locate_agrees_with_git(any_repo, store):
    """kind and size match git; a packed object's offset is where git's .idx puts it; a delta's
    base is the one `git verify-pack -v` names; a loose object's file exists."""
    git = any_repo.git
    objects = git.objects()
    dirs = all_object_dirs(any_repo)
    offsets: dict[Path, dict[str, int]] = {}
    bases: dict[Path, dict[str, str | None]] = {}
    for oid, (kind, size) in objects.items():
        info = store.locate(oid)
        assert (info.kind, info.size) == (kind, size), oid
        source = info.source
        objects_dir = dirs[0]
        if source.startswith("alternate:"):
            alt_path, source = source[len("alternate:"):].rsplit(":", 1)
            matches = [d for d in dirs[1:] if os.path.samefile(d, alt_path)]
            assert matches, f"{oid}: {info.source} names no alternate of this repository"
            objects_dir = matches[0]
        if source == "loose":
            assert info.offset is None and info.delta_base is None, info
            assert (objects_dir / oid[:2] / oid[2:]).is_file(), info
            continue
        pack = objects_dir / "pack" / source
        assert source.startswith("pack-") and pack.is_file(), info
        if pack not in offsets:
            offsets[pack] = pack_offsets(git, pack)
            bases[pack] = pack_delta_bases(git, pack)
        assert info.offset == offsets[pack][oid], (oid, info)
        assert info.delta_base == bases[pack][oid], (oid, info)


# ---- listing ------------------------------------------------------------------------------------


def test_iter_is_exactly_gits_ids(any_repo, store):
    ours = list(store)
    assert ours == sorted(set(ours)), "not sorted or not de-duplicated"
    assert ours == any_repo.git.ids()


def test_iter_bucket_partitions_gits_ids(any_repo, store):
    want: dict[int, list[str]] = {}
    for oid in any_repo.git.ids():
        want.setdefault(int(oid[:2], 16), []).append(oid)
    for bucket in range(256):
        assert store.iter_bucket(bucket) == want.get(bucket, []), f"bucket {bucket:02x}"


# ---- opening ------------------------------------------------------------------------------------


def open_forms(repo) -> dict[str, Path]:
    forms = {"objects dir": repo.objects_dir}
    if repo.bare:
        forms["bare"] = repo.path
    else:
        forms["work tree"] = repo.path
        forms[".git dir"] = repo.git_dir
    return forms


@pytest.mark.parametrize("name", ["loose", "bare", "midx", "alt-chain", "sha256"])
def test_every_path_form_opens_the_same_store(fixture_repo, name):
    repo = fixture_repo(name)
    want = repo.git.ids()
    for form, path in open_forms(repo).items():
        for p in (path, str(path)):
            with odb.open(p) as s:
                assert list(s) == want, form
                assert s.format == (odb.SHA256 if name == "sha256" else odb.SHA1), form


def test_format(fixture_repo):
    with odb.open(fixture_repo("sha256").path) as s:
        assert s.format is odb.SHA256 and s.format.hex_len == 64 and s.format.raw_len == 32
    with odb.open(fixture_repo("midx").path) as s:
        assert s.format is odb.SHA1 and s.format.hex_len == 40 and s.format.raw_len == 20


def not_repositories(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "file").write_text("not a repository\n")
    (tmp_path / "fake" / ".git").mkdir(parents=True)
    return {"missing": tmp_path / "does-not-exist", "empty dir": tmp_path / "empty-dir",
            "file": tmp_path / "file", "empty .git": tmp_path / "fake"}


def test_not_a_repository(tmp_path):
    for what, path in not_repositories(tmp_path).items():
        with pytest.raises(odb.NotARepository) as caught:
            odb.open(path)
        message = str(caught.value)
        assert message and "\n" not in message, (what, message)
        assert isinstance(caught.value, odb.OdbError)


# ---- concurrency and options --------------------------------------------------------------------


def test_concurrent_readers(fixture_repo):
    repo = fixture_repo("bare")
    want = {oid: (kind, data) for oid, kind, data in repo.git.contents(repo.git.ids())}
    errors = []
    with odb.open(repo.path, cache_size=1 << 16) as s:

        def reader(k):
            try:
                for oid in list(want)[k::3] + list(want):
                    if s.read(oid) != want[oid]:
                        errors.append(f"wrong bytes for {oid}")
            except Exception as e:  # noqa: BLE001 - reported below, with the thread's failure
                errors.append(repr(e))

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


@pytest.mark.parametrize("cache_size", [0, 4096])
def test_tiny_delta_cache_still_reads_deep_chains(fixture_repo, cache_size):
    repo = fixture_repo("deep-delta")
    with odb.open(repo.path, cache_size=cache_size) as s:
        for oid, kind, data in repo.git.contents(repo.git.ids()):
            assert s.read(oid) == (kind, data)


@pytest.mark.parametrize("name", ["midx", "sha256", "alt-chain", "bigblob"])
def test_verify_accepts_intact_objects(fixture_repo, name):
    repo = fixture_repo(name)
    with odb.open(repo.path, verify=True) as s:
        for oid, kind, data in repo.git.contents(repo.git.ids()):
            assert s.read(oid) == (kind, data)


def test_verify_rejects_a_loose_object_with_the_wrong_content(repo_copy):
    repo = repo_copy("loose")
    victim = repo.git.rev_parse("HEAD:README")
    path = repo.objects_dir / victim[:2] / victim[2:]
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob 5\0liar\n"))
    with odb.open(repo.path, verify=True) as s:
        with pytest.raises(odb.CorruptObject):
            s.read(victim)


# ---- refresh ------------------------------------------------------------------------------------


def add_commit(repo, tag: str) -> str:
    (repo.path / f"{tag}.txt").write_text(f"new content {tag}\n")
    repo.git.run("add", "-A")
    repo.git.run("commit", "-q", "-m", f"commit {tag}")
    return repo.git.rev_parse("HEAD")


def assert_matches_git(store, repo):
    assert list(store) == repo.git.ids()
    for oid, kind, data in repo.git.contents(repo.git.ids()):
        assert store.read(oid) == (kind, data), oid


def test_refresh_is_false_when_nothing_changed(fixture_repo):
    with odb.open(fixture_repo("midx").path) as s:
        assert s.refresh() is False
        assert s.refresh() is False


def test_refresh_sees_a_new_loose_object(repo_copy):
    repo = repo_copy("midx")
    with odb.open(repo.path) as s:
        before = list(s)
        oid = repo.git.run("hash-object", "-w", "--stdin", input="a brand new blob\n").strip()
        assert oid not in before
        assert s.refresh() is True
        assert oid in s.iter_bucket(int(oid[:2], 16))
        assert s.read(oid) == ("blob", b"a brand new blob\n")
        assert s.refresh() is False
        assert_matches_git(s, repo)


def test_a_miss_refreshes_by_itself(repo_copy):
    repo = repo_copy("loose")
    with odb.open(repo.path) as s:
        oid = repo.git.run("hash-object", "-w", "--stdin", input="found without refresh()\n").strip()
        assert s.read(oid) == ("blob", b"found without refresh()\n")
        assert s.resolve_prefix(oid[:12]) == oid


def test_refresh_sees_a_new_pack(repo_copy):
    repo = repo_copy("midx")
    with odb.open(repo.path) as s:
        packs = repo.git.packs()
        head = add_commit(repo, "packed")
        repo.git.run("repack", "-d", "-q")
        assert len(repo.git.packs()) == len(packs) + 1
        assert s.refresh() is True
        assert head in list(s)
        assert_matches_git(s, repo)


def test_refresh_sees_a_rewritten_midx(repo_copy):
    repo = repo_copy("midx")
    with odb.open(repo.path) as s:
        add_commit(repo, "midx")
        repo.git.run("repack", "-d", "-q")
        midx = repo.objects_dir / "pack" / "multi-pack-index"
        old = midx.read_bytes()
        repo.git.run("multi-pack-index", "write")
        assert midx.read_bytes() != old
        assert s.refresh() is True
        assert_matches_git(s, repo)
        # Everything now lives in one pack, and a new midx names only that pack.
        repo.git.run("repack", "-adq")
        repo.git.run("multi-pack-index", "write")
        assert len(repo.git.packs()) == 1
        assert s.refresh() is True
        assert_matches_git(s, repo)


def test_refresh_after_midx_deleted(repo_copy):
    repo = repo_copy("midx")
    with odb.open(repo.path) as s:
        (repo.objects_dir / "pack" / "multi-pack-index").unlink()
        assert s.refresh() is True
        assert_matches_git(s, repo)


def test_refresh_after_gc_prune(repo_copy):
    repo = repo_copy("midx")
    with odb.open(repo.path) as s:
        doomed = repo.git.run("hash-object", "-w", "--stdin", input="unreachable, soon pruned\n").strip()
        assert s.read(doomed)[1] == b"unreachable, soon pruned\n"
        repo.git.run("gc", "-q", "--prune=now")
        assert doomed not in repo.git.objects()
        assert s.refresh() is True
        assert doomed not in list(s)
        assert doomed not in s.iter_bucket(int(doomed[:2], 16))
        with pytest.raises(odb.ObjectNotFound):
            s.read(doomed)
        with pytest.raises(odb.ObjectNotFound):
            s.resolve_prefix(doomed[:16])
        assert_matches_git(s, repo)


def test_refresh_in_an_alternate(repo_copy):
    repo = repo_copy("alt-chain")
    base = repo_copy("alt-base")
    with odb.open(repo.path) as s:
        oid = base.git.run("hash-object", "-w", "--stdin", input="new in the base\n").strip()
        assert s.refresh() is True
        assert oid in list(s)
        assert s.read(oid) == ("blob", b"new in the base\n")
        assert s.locate(oid).source.startswith("alternate:")


def test_git_env_is_isolated():
    """The oracle's git must not see the user's configuration (a guard on the tests themselves)."""
    out = subprocess.run(["git", "config", "--global", "--list"], env=git_env(), capture_output=True)
    assert out.stdout == b""


def open_pack_files() -> set[str]:
    """The .pack files this process holds a descriptor to."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if ".pack" in target:
            found.add(target)
    return found


def test_packs_git_deleted_are_closed_at_refresh(repo_copy, monkeypatch):
    """After gc, the old packs' space is freed: nothing here keeps them open or mapped."""
    monkeypatch.setattr("odb.pack.packfile.READ_WHOLE_BELOW", 0)  # every pack held open, as big ones are
    repo = repo_copy("midx")
    before = open_pack_files()
    with odb.open(repo.path) as s:
        for oid in repo.git.objects():
            s.read(oid)
            s.read_header(oid)
        held = open_pack_files() - before
        assert held and not any(name.endswith("(deleted)") for name in held)
        repo.git.run("gc", "-q", "--prune=now")
        assert s.refresh() is True
        assert_matches_git(s, repo)
        left = open_pack_files() - before
        assert not any(name.endswith("(deleted)") for name in left), left


def test_a_bucket_listing_is_sorted_and_unique_when_the_snapshot_changes_under_it(repo_copy, monkeypatch):
    """A bucket's ids are listed from two sources (the midx, and a pack outside it that repeats
    its objects); another thread's refresh swaps in a snapshot of one midx meanwhile. The listing
    stays sorted, each id once: a concatenation taken for one sorted table gave the mount
    duplicate ids, whose inodes it then moved (a READ of the inode the kernel held: ENOENT)."""
    repo = repo_copy("midx")
    git = repo.git
    ids = git.ids()
    git.run("pack-objects", "-q", str(repo.objects_dir / "pack" / "pack"), input="\n".join(ids) + "\n")
    with odb.open(repo.path) as store:
        store.refresh()
        backend = store._dirs[0].packs
        assert len(backend._snap.sources) >= 2  # the midx, and packs beside it (the new one last)
        loose = {p.name for p in repo.objects_dir.iterdir() if len(p.name) == 2}
        bucket = next(int(i[:2], 16) for i in ids if i[:2] not in loose)  # listed from packs alone
        outside = backend._snap.sources[-1]
        real = type(outside).bucket_block

        def swapped(source, first_byte):
            block = real(source, first_byte)
            if source is outside:
                git.run("multi-pack-index", "write")  # what another thread's refresh now sees
                backend.refresh()
                assert len(backend._snap.sources) == 1
            return block

        monkeypatch.setattr(type(outside), "bucket_block", swapped)
        block = store.bucket_ids(bucket)
        listed = [block[i : i + 20].hex() for i in range(0, len(block), 20)]
        assert listed == sorted(set(listed)) == sorted(i for i in ids if int(i[:2], 16) == bucket)
