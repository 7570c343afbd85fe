"""FUSE_NOTIFY_STORE written straight to the FUSE device: how a helper process pushes an object's
bytes into the kernel's page cache without sending them to the mount first.

This is the message libfuse's fuse_lowlevel_notify_store() writes (include/linux/fuse.h): an
out-header whose error field is the notify code and whose unique is 0, the store header, then the
bytes. Any holder of the session's descriptor may write it; the mount passes its descriptor to the
helpers it starts. The kernel refuses it (ENOENT) for an inode it does not know.
"""

from __future__ import annotations

import os
import struct

from gitfs.tuning import PUSH_CHUNK as CHUNK

FUSE_NOTIFY_STORE = 4
_OUT_HEADER = struct.Struct("<IiQ")  # len, error (the notify code), unique (0)
_STORE_OUT = struct.Struct("<QQII")  # nodeid, offset, size, padding


def store(device: int, inode: int, data) -> None:
    """Puts data at offset 0 of inode's pages; raises OSError (ENOENT: unknown inode)."""
    view = memoryview(data)
    head_len = _OUT_HEADER.size + _STORE_OUT.size
    for offset in range(0, len(view), CHUNK):
        piece = view[offset : offset + CHUNK]
        head = _OUT_HEADER.pack(head_len + len(piece), FUSE_NOTIFY_STORE, 0) + _STORE_OUT.pack(inode, offset, len(piece), 0)
        # One write is one message: the kernel takes it whole or not at all.
        os.writev(device, [head, piece])
