"""What this installation can do: library versions and the kernel-protocol levers available."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.metadata

from gitfs import __version__


@functools.cache
def libfuse_version() -> str:
    """libfuse's own version string (fuse_pkgversion), or "unknown" if the library cannot be loaded."""
    # The soname pyfuse3 links against loads without a search; find_library runs `ldconfig -p`
    # (a subprocess, tens of milliseconds of every mount's start), so it is only the fallback.
    for name in ("libfuse3.so.3", None):
        try:
            lib = ctypes.CDLL(name or ctypes.util.find_library("fuse3") or "libfuse3.so")
            lib.fuse_pkgversion.restype = ctypes.c_char_p
            return lib.fuse_pkgversion().decode()
        except (OSError, AttributeError):
            continue
    return "unknown"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def fast_path_command() -> str:
    """The one command that gives this installation the patched pyfuse3 (gitfs/patched_pyfuse3.py)."""
    from gitfs.patched_pyfuse3 import command
    return command()


def reads_by_inode() -> bool:
    """pyfuse3 carries gitfs/pyfuse3-read-by-inode.patch: files can be served without OPEN."""
    import pyfuse3
    return bool(getattr(pyfuse3, "READ_FH_IS_INODE_WITHOUT_OPEN", False))


def waits_awake() -> bool:
    """pyfuse3 carries gitfs/pyfuse3-spin.patch: its loop can wait for the next request awake."""
    import pyfuse3
    return hasattr(pyfuse3, "set_spin")


def offers_requests() -> bool:
    """pyfuse3 carries gitfs/pyfuse3-fast-path.patch: a compiled handler can answer requests."""
    import pyfuse3
    return hasattr(pyfuse3, "set_fast_path")


def compiled_requests() -> str | None:
    """Why LOOKUP and READ of object files are answered in Python here, or None when they are
    answered in C (gitfs/fuse/_request_path.c) wherever the repository allows."""
    from gitfs.fuse.compiled_requests import unavailable
    return unavailable()


def delta_accelerated() -> bool:
    from odb.objects import delta
    return delta.IMPLEMENTATION == "c"


def engine_accelerated() -> str | None:
    """odb/_engine.c is built and in use: objects are read in C, without the GIL; its inflater."""
    from odb.objects import delta_chain
    return delta_chain.engine.INFLATER if delta_chain.IMPLEMENTATION == "c" else None


def sizes_accelerated() -> bool:
    """odb/_sizes.c is built and in use: listings read object sizes in bulk in C."""
    from odb.pack import sizes
    return sizes.IMPLEMENTATION == "c"


def tree_accelerated() -> bool:
    """odb/_tree.c is built and in use: trees are indexed in C for .tree listings."""
    from odb.objects import tree
    return tree.IMPLEMENTATION == "c"


@functools.cache
def features() -> dict[str, str | bool]:
    return {
        "gitfs": __version__,
        "pyfuse3": _version("pyfuse3"),
        "libfuse": libfuse_version(),
        "trio": _version("trio"),
        "c_delta": delta_accelerated(),
        "c_sizes": sizes_accelerated(),
        "c_engine": engine_accelerated(),
        "c_tree": tree_accelerated(),
        "no_open": reads_by_inode(),
        "spin": waits_awake(),
        "compiled_requests": compiled_requests() or True,
        # notify_store is in every pyfuse3 3.x; the kernel refuses it only for inodes it does
        # not know, which the mount never pushes.
        "page_cache_push": True,
    }


def describe() -> list[str]:
    """The lines `gitfs --version` prints after its first."""
    f = features()
    yes = {True: "yes", False: "no"}
    return [
        f"pyfuse3 {f['pyfuse3']}, libfuse {f['libfuse']}, trio {f['trio']}",
        f"C delta accelerator: {yes[f['c_delta']]}",
        f"C size accelerator: {yes[f['c_sizes']]}",
        f"C object engine: {'yes, inflating with ' + f['c_engine'] if f['c_engine'] else 'no'}",
        f"C tree indexer: {yes[f['c_tree']]}",
        "no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): "
        + ("yes" if f["no_open"] else f"no (stock pyfuse3: 3 kernel requests per file read instead of 1; "
                                      f"for the fast path run: {fast_path_command()})"),
        f"page-cache push (notify_store): {yes[f['page_cache_push']]}",
        "requests awaited awake (pyfuse3.set_spin, patched pyfuse3): "
        + ("yes" if f["spin"] else f"no (a request's round trip costs twice the wake-ups; run: {fast_path_command()})"),
        "lookups and reads answered in C (gitfs/fuse/_request_path.c): "
        + ("yes" if f["compiled_requests"] is True else f"no, {f['compiled_requests']}"),
    ]
