"""The one place where exceptions from handlers become errno for the kernel."""

from __future__ import annotations

import errno
import functools
import logging

import pyfuse3

import odb

log = logging.getLogger("gitfs")


def _describe(name: str, args) -> str:
    """handler(args) for a log line: ids in hex, request contexts and tokens left out."""
    shown = ", ".join(a.hex() if isinstance(a, bytes) and len(a) in (20, 32) else repr(a)
                      for a in args if isinstance(a, (int, bytes, str)))
    return f"{name}({shown})"


_trace = False


def trace_requests(enabled: bool) -> None:
    """With -d/--debug every request is logged as it arrives."""
    global _trace
    _trace = enabled


def fuse_errors(handler):
    """Wraps a pyfuse3 handler so that it raises FUSEError only.

    pyfuse3 lets any other exception escape into its session loop, which would
    take the whole mount down; here it is logged and the request gets an errno.
    """

    name = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self, *args):
        self.counts[name] += 1  # requests by kind: `gitfs status`, the bench, the tests
        if _trace:
            log.debug("%s", _describe(name, args))
        try:
            return await handler(self, *args)
        except pyfuse3.FUSEError as e:
            if _trace:
                log.debug("%s -> %s", _describe(name, args), errno.errorcode.get(e.errno, e.errno))
            raise
        except odb.ObjectNotFound:
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        except odb.AmbiguousPrefix as e:
            log.warning("%s: short id %s is ambiguous, candidates: %s",
                        _describe(name, args), e.prefix, " ".join(e.candidates))
            raise pyfuse3.FUSEError(errno.ENOTUNIQ) from None
        except odb.CorruptObject as e:
            log.error("%s: corrupt object %s: %s", _describe(name, args), e.oid or "?", e)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except odb.AccessDenied as e:
            # The repository keeps a file from this process: the reader is told so, as a read of
            # that file would tell it, and the log names the file.
            log.error("%s: %s", _describe(name, args), e)
            raise pyfuse3.FUSEError(errno.EACCES) from None
        except odb.OdbError as e:
            log.error("%s: %s", _describe(name, args), e)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except OSError as e:
            # The view says "no such entry", "not a directory", "no such attribute", "no
            # attributes of that namespace" with these errnos, which are answers, not faults;
            # an I/O error on the repository keeps its own errno (EACCES stays EACCES), and
            # anything without one is EIO.
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENODATA, errno.ENOTSUP):
                log.error("%s: %s", _describe(name, args), e)
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed unexpectedly", _describe(name, args))
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


def read_only(handler):
    """A write-type handler: the mount is read-only, whatever is asked."""

    @functools.wraps(handler)
    async def wrapper(self, *args):
        raise pyfuse3.FUSEError(errno.EROFS)

    return wrapper
