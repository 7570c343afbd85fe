"""Pack (.pack) files, versions 2 and 3: entry headers and zlib inflation of entry data.

What an entry header says is parsed by odb/pack/entry.py, and how many of a pack's pages stay
resident is odb/pack/residency.py's (the base of Pack).
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
import threading
import zlib

from ..errors import CorruptObject
from ..objects.inflation import Inflation
from ..mapped_file import READ_WHOLE_BELOW, Descriptor, open_regular, read_all
from ..oid import ObjectFormat
from .entry import MAX_ENTRY_HEADER, MAX_INFLATE_RATIO, Entry, parse_entry
from .index import PackIndex
from .residency import PageRelease, ResidentWindows
from ..tuning import HEADER_READ, PREFIX_READ, STREAM_CHUNK, WINDOW_SHIFT


# A number per Pack for the compiled engine's cache (odb/_engine.c), which keys on numbers, not objects.
_keys = itertools.count(1)


class Pack(ResidentWindows):
    """A .pack beside its .idx. The idx opens on demand, the pack data on first read.

    Opening lazily is what makes a multi-pack-index hit cheap (libgit2's design): a
    repository with hundreds of packs maps only those it actually reads.

    A big pack, once opened, keeps a descriptor: headers are read through it with pread,
    which leaves nothing resident in this process, while whole entries are inflated from
    the mapping. A header walk over every object (st_size for `find`) would otherwise
    fault in, and count in RSS, most pages of every pack. Small packs are read whole.
    """

    def __init__(self, pack_path: str, fmt: ObjectFormat):
        self.pack_path = pack_path
        self.idx_path = pack_path[: -len(".pack")] + ".idx"
        self.name = os.path.basename(pack_path)
        self.format = fmt
        self._lock = threading.Lock()
        self._index: PackIndex | None = None
        self._desc: Descriptor | None = None  # big packs: open from first read until unmap()
        self._small: bytes | None = None  # small packs: the whole file
        self._buf = None  # the mapping (or the small file's bytes) once data is read
        self._view: memoryview | None = None
        self._data_end = 0
        self.checked = False  # the .pack's header and trailer agree with the .idx (read-only outside)
        self._windows = bytearray()  # 1 per 64 KiB window touched since the last release
        self._resident = 0  # how many of them
        self.on_map = None  # called after the file is opened: the backend's LRU of open packs
        # Entry offset -> type of the whole object under its delta chain: the chain
        # reader's memo, valid while kinds_epoch is the reader's current epoch.
        self.kinds: dict[int, int] = {}
        self.kinds_epoch = None
        self.key = next(_keys)

    # -- opening -------------------------------------------------------------

    @property
    def index(self) -> PackIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = PackIndex(self.idx_path, self.format)
        return self._index

    def _corrupt(self, reason: str, offset: int | None = None) -> CorruptObject:
        return CorruptObject(self.pack_path, offset, reason)

    def _open_locked(self) -> bool:
        """Opens the file (checked against the .idx) unless it is open; True if it just opened."""
        if self._desc is not None or self._small is not None:
            return False
        h = self.format.raw_len
        fd = open_regular(self.pack_path)
        try:
            size = os.fstat(fd).st_size
            if size < READ_WHOLE_BELOW:
                data = read_all(fd, size)
                size = len(data)
                self._check_header(data[:12], data[size - h :], size)
            else:
                data = None
                self._check_header(os.pread(fd, 12, 0), os.pread(fd, h, size - h), size)
        except BaseException:
            os.close(fd)
            raise
        # Published last: readers take no lock, and must not see the file before its end.
        self.checked = True
        self._data_end = size - h
        if data is not None:
            os.close(fd)
            self._small = data
        else:
            self._desc = Descriptor(fd)
        return True

    def _open(self) -> None:
        self.index  # noqa: B018 - loaded first: it takes the same lock
        with self._lock:
            opened = self._open_locked()
        if opened and self.on_map is not None:
            self.on_map(self)

    def _open_data(self) -> memoryview:
        self.index  # noqa: B018 - loaded first: it takes the same lock
        with self._lock:
            opened = self._open_locked()
            if self._view is None:
                if self._small is not None:
                    self._buf = self._small
                else:
                    self._buf = mmap.mmap(self._desc.fd, 0, prot=mmap.PROT_READ)
                self._windows = bytearray((len(self._buf) >> WINDOW_SHIFT) + 1)
                self._resident = 0
                self._view = memoryview(self._buf)
            view = self._view
        if opened and self.on_map is not None:
            self.on_map(self)
        return view

    def _check_header(self, head: bytes, trailer: bytes, size: int) -> None:
        h = self.format.raw_len
        if size < 12 + h or head[:4] != b"PACK":
            raise self._corrupt("not a pack file")
        version, count = struct.unpack_from(">II", head, 4)
        if version not in (2, 3):
            raise self._corrupt(f"unsupported pack version {version}", 4)
        index = self.index
        if count != index.count:
            raise self._corrupt(f"pack holds {count} objects but its index lists {index.count}", 8)
        if trailer != index.pack_checksum:
            raise self._corrupt("pack trailer does not match its index", size - h)

    def check(self) -> None:
        """Checks the .pack against its .idx (signature, version, count, trailer) without
        opening it for reading: scanning many packs for one id must not hold (or read)
        every pack."""
        if self.checked:
            return
        h = self.format.raw_len
        fd = open_regular(self.pack_path)
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, 12, 0)
            trailer = os.pread(fd, h, size - h) if size >= h else b""
        finally:
            os.close(fd)
        self._check_header(head, trailer, size)
        with self._lock:
            if self._desc is None and self._small is None:
                self._data_end = size - h
        self.checked = True

    def unmap(self) -> None:
        """Closes the descriptor and drops our reference to the data; readers still holding
        a view keep the mapping alive until they finish, and the next read opens again."""
        with self._lock:
            self._desc = None  # closed once no reader holds it
            self._small = None
            self._view = None
            self._buf = None

    def ensure_open(self) -> None:
        """Raises CorruptObject or OSError now rather than at the first read."""
        if self._view is None:
            self._open_data()

    @property
    def view(self) -> memoryview:
        return self._view if self._view is not None else self._open_data()

    def engine_source(self) -> tuple:
        """What odb/_engine.c reads entries from: (the mapping or the small file's bytes, where
        the entries end, the window marks it sets as it reads; see _touch)."""
        view = self.view
        return view.obj, self._data_end, self._windows

    def contains_offset(self, offset: int) -> bool:
        return 12 <= offset < self._data_end

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset, without mapping anything (shorter at the end of the data)."""
        while True:
            small = self._small
            if small is not None:
                return small[offset : min(offset + n, self._data_end)]
            desc = self._desc  # held across the pread: see Descriptor
            if desc is not None:
                return os.pread(desc.fd, max(0, min(n, self._data_end - offset)), offset)
            self._open()

    def header_source(self) -> tuple[bytes | Descriptor, int]:
        """What header() reads from, for reading many entries at once (pack/sizes.py): the small
        file's bytes, or the descriptor (to be held across the reads), and where the data ends."""
        while True:
            small = self._small
            if small is not None:
                return small, self._data_end
            desc = self._desc
            if desc is not None:
                return desc, self._data_end
            self._open()

    # -- entries -------------------------------------------------------------

    def entry(self, offset: int) -> Entry:
        """The entry header at offset, read from the mapping (its data is read next)."""
        # The pages touched here are counted by inflate(), which reads on from here. A slice
        # of the map itself (view.obj) is bytes, which index faster than a memoryview.
        buf = self.view.obj
        return parse_entry(self, buf[offset : min(offset + MAX_ENTRY_HEADER, self._data_end)], offset)

    def header(self, offset: int) -> tuple[Entry, bytes]:
        """The entry header at offset and the bytes read with it: the start of its data,
        usually enough for a delta's size header. Read with pread: see the class doc."""
        head = self._small
        if head is not None:
            head = head[offset : min(offset + HEADER_READ, self._data_end)]
        else:
            desc = self._desc  # held across the pread: see Descriptor
            if desc is None:
                self._open()
                return self.header(offset)
            if not 12 <= offset < self._data_end:
                raise self._corrupt("entry offset outside the pack", offset)
            head = os.pread(desc.fd, min(HEADER_READ, self._data_end - offset), offset)
        return parse_entry(self, head, offset), head

    # -- inflation -----------------------------------------------------------

    def inflate(self, entry: Entry) -> bytes:
        """The entry's whole data, exactly entry.size bytes, or CorruptObject."""
        view = self.view
        size, pos, end = entry.size, entry.data_offset, self._data_end
        if size > (end - pos) * MAX_INFLATE_RATIO + 64:
            raise self._corrupt(f"entry claims {size} bytes, more than its data can hold", entry.offset)
        d = zlib.decompressobj()
        # deflateBound(): a zlib stream of n bytes never needs more than about this input.
        stop = min(end, pos + size + (size >> 11) + 64)
        try:
            out = d.decompress(view[pos:stop], size + 1)
            if not d.eof and len(out) <= size and stop < end:
                out = self._inflate_rest(d, out, stop, size)
        except zlib.error as e:
            raise self._corrupt(f"bad compressed data: {e}", entry.offset) from None
        if len(out) != size or not d.eof:
            raise self._corrupt(f"entry inflates to the wrong size (header says {size})", entry.offset)
        self._touch(entry.offset, stop - len(d.unused_data))
        return out

    def _inflate_rest(self, d, out: bytes, pos: int, size: int) -> bytes:
        # Only unusual encoders get here: the stream is longer than zlib's own bound.
        parts = [out]
        have = len(out)
        view, end = self.view, self._data_end
        while not d.eof and have <= size and pos < end:
            stop = min(end, pos + STREAM_CHUNK)
            more = d.decompress(view[pos:stop], size + 1 - have)
            parts.append(more)
            have += len(more)
            pos = stop
        return b"".join(parts)

    def inflate_prefix(self, entry: Entry, n: int, head: bytes = b"") -> bytes:
        """Up to the first n bytes of the entry's data (a delta's size header), inflated from
        `head` (bytes read from entry.offset on) and, if those run short, read with pread."""
        skip = entry.data_offset - entry.offset
        d = zlib.decompressobj()
        try:
            out = d.decompress(head[skip:], n) if len(head) > skip else b""
            pos = entry.offset + max(len(head), skip)
            while len(out) < n and not d.eof and not d.unconsumed_tail and pos < self._data_end:
                more = self.read_at(pos, PREFIX_READ)
                if not more:
                    break
                out += d.decompress(more, n - len(out))
                pos += len(more)
        except zlib.error as e:
            raise self._corrupt(f"bad compressed data: {e}", entry.offset) from None
        return out

    def iter_inflate(self, entry: Entry) -> Inflation:
        """The entry's data in pieces, for streaming big blobs without holding them."""
        view = self.view
        return Inflation(lambda pos, n: view[pos : pos + n], entry.data_offset, self._data_end, entry.size,
                         lambda reason: self._corrupt(reason, entry.offset),
                         on_input=PageRelease(self, entry.data_offset))
