"""Extended attributes of the mount's files: user.git.* of every object (its type, where it is
stored, its delta base), and what a namespace adds of its own (under .tree: user.git.id,
user.git.mode). The root's user.gitfs.status is the view's (MountView.status).
"""

from __future__ import annotations

import errno
import os

# The object's attributes, on every object file and on namespace files that show an object.
XATTRS = (b"user.git.type", b"user.git.source", b"user.git.offset", b"user.git.delta_base")


class ObjectXattrs:
    def __init__(self, view):
        self.view = view

    async def value(self, inode: int, name: bytes) -> bytes:
        if not name.startswith(b"user."):
            # `ls -l` asks security.selinux and system.posix_acl_access of every entry. The mount
            # holds no attribute outside user.*, and says so with ENOTSUP rather than ENODATA:
            # ls (coreutils' getfilecon_cache, file_has_acl_cache) then stops asking for the
            # rest of this filesystem, two requests per listing instead of two per entry. The
            # kernel treats ENOTSUP as "none" for security.capability at exec, as ENODATA.
            raise OSError(errno.ENOTSUP, "no attributes outside user.*")
        namespace = self.view.namespace_of(inode)
        if namespace is None:
            raise OSError(errno.ENODATA, "no such attribute")
        if name == XATTRS[0]:
            value = await self._object_type(inode, namespace)
        elif name in XATTRS:
            value = (await self._object_values(inode, namespace)).get(name)
        else:
            value = namespace.xattrs(inode).get(name)  # its own (user.git.id, user.git.mode...)
        if value is None:
            raise OSError(errno.ENODATA, "no such attribute")
        return value

    async def names(self, inode: int) -> list[bytes]:
        namespace = self.view.namespace_of(inode)
        if namespace is None:
            return []
        return list(namespace.xattrs(inode)) + list(await self._object_values(inode, namespace))

    async def _object_type(self, inode: int, namespace) -> bytes | None:
        """user.git.type alone, the one attribute a reader asks of every file (a hasher of
        `type size\0bytes`): from the entry headers, without what locate() adds (the pack's
        name, the delta base's id from the reverse index). Measured on git.git, buckets 00-03:
        6 us an object against 45 us; the hasher of figure (11) 1.1-1.2 s against 1.4-1.6 s."""
        oid = await namespace.object_of(inode)
        if oid is None:
            return None
        kind, _ = await self.view.small(self.view.store.read_header, oid)
        return kind.encode()

    async def _object_values(self, inode: int, namespace) -> dict[bytes, bytes]:
        """user.git.* of the object an inode shows (an object file; under .tree its blob or
        tree; a .log entry's commit), or none."""
        view = self.view
        oid = await namespace.object_of(inode)
        if oid is None:
            return {}
        info = await view.small(view.store.locate, oid)
        values = {b"user.git.type": info.kind.encode(), b"user.git.source": os.fsencode(info.source)}
        if info.offset is not None:
            values[b"user.git.offset"] = str(info.offset).encode()
        if info.delta_base is not None:
            values[b"user.git.delta_base"] = info.delta_base.encode()
        return values
