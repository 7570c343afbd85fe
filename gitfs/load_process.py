"""A forked helper process that inflates objects, so odb's Python work runs beside the FUSE loop.

Threads of one process take turns under the GIL: a loader thread running
odb's pure-Python delta and pack code stalls the FUSE loop, and the second
core idles. A child process forked before the mount (so it holds no FUSE
file descriptor) reads objects from its copy of the store and sends the bytes
back over a pipe; the loader thread waiting on that pipe releases the GIL.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import struct
import threading
from array import array

import odb

log = logging.getLogger("gitfs")

# Request: command and a number, then ids. b"R": size hint + 1 (0: unknown),
# one id. b"H": how many ids follow. b"F": refresh, no ids.
_REQUEST = struct.Struct(">cQ")
# The answer of a b"H" request: one signed 64-bit size per id, -1 for a failure.
# Response: status, payload length, then the payload.
_RESPONSE = struct.Struct(">BQ")
OK, TOO_BIG, NOT_FOUND, CORRUPT, ERROR = range(5)
_F_SETPIPE_SZ = 1031  # Linux: a bigger pipe means fewer trips for big objects
_PIPE_SIZE = 1 << 20
# Our ends of every helper's pipes: a helper forked later must not inherit
# them, or an earlier helper would never see its request pipe close.
_parent_fds: set[int] = set()


def _read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class LoadProcess:
    """One child process answering one request at a time: (id, size hint) -> bytes."""

    def __init__(self, store, max_entry: int, generation, close_fds=()):
        self._store = store
        self._max_entry = max_entry
        self._generation = generation  # () -> int; bumped when the store changed
        self._seen_generation = generation()
        self._raw_len = store.format.raw_len
        self._lock = threading.Lock()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        for fd in (req_w, resp_w):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                pass  # not Linux, or over the system limit: the default works
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(req_w)
                os.close(resp_r)
                self._become_child([*close_fds, *_parent_fds])
                self._serve(req_r, resp_w)
                status = 0
            finally:
                os._exit(status)
        os.close(req_r)
        os.close(resp_w)
        self.pid = pid
        self._requests = req_w
        self._responses = resp_r
        _parent_fds.update((req_w, resp_r))
        self._alive = True

    # -- the child ---------------------------------------------------------

    @staticmethod
    def _become_child(close_fds) -> None:
        # The caller's stdio and the daemon's readiness pipe must not be held
        # open by this process; the parent handles signals and closes our pipe.
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        logging.getLogger().handlers.clear()

    def _serve(self, requests: int, responses: int) -> None:
        store = self._store
        while True:
            head = _read_exact(requests, _REQUEST.size)
            if head is None:
                return  # the mount closed the pipe (or died)
            command, hint = _REQUEST.unpack(head)
            if command == b"F":
                store.refresh()
                _write_all(responses, _RESPONSE.pack(OK, 0))
                continue
            if command == b"H":
                raws = _read_exact(requests, hint * self._raw_len)
                if raws is None:
                    return
                status, payload = OK, self._sizes(bytes(raws))
                _write_all(responses, _RESPONSE.pack(status, len(payload)))
                _write_all(responses, payload)
                continue
            raw = _read_exact(requests, self._raw_len)
            if raw is None:
                return
            status, payload = self._answer(bytes(raw), hint - 1 if hint else None)
            _write_all(responses, _RESPONSE.pack(status, len(payload)))
            _write_all(responses, payload)

    def _answer(self, raw: bytes, size: int | None):
        try:
            if size is None:
                size = self._store.read_size(raw)
            if size > self._max_entry:
                return TOO_BIG, b""
            return OK, self._store.read(raw)[1]
        except odb.ObjectNotFound:
            return NOT_FOUND, b""
        except odb.CorruptObject as e:
            return CORRUPT, "\0".join((str(e.path), str(e.offset), e.reason)).encode(errors="replace")
        except Exception as e:  # reported by the parent, which maps it to EIO
            return ERROR, f"{type(e).__name__}: {e}".encode(errors="replace")

    def _sizes(self, ids: bytes) -> bytes:
        out = array("q")
        n = self._raw_len
        read_size = self._store.read_size
        for i in range(0, len(ids), n):
            try:
                out.append(read_size(ids[i:i + n]))
            except Exception:  # the parent asks again itself, to report the error
                out.append(-1)
        return out.tobytes()

    # -- the parent --------------------------------------------------------

    def sizes(self, ids: bytes) -> list:
        """Sizes of the objects whose raw ids are concatenated in `ids`, in order, from
        headers; an exception in place of each failure."""
        with self._lock:
            if self._alive:
                try:
                    return self._remote_sizes(ids)
                except (OSError, EOFError) as e:
                    self._alive = False
                    log.error("object loader process %d failed (%s); loading in the mount process", self.pid, e)
        n = self._raw_len
        return [self._local_size(ids[i:i + n]) for i in range(0, len(ids), n)]

    def _local_size(self, raw: bytes):
        try:
            return self._store.read_size(raw)
        except odb.OdbError as e:
            return e

    def _remote_sizes(self, ids: bytes) -> list:
        n = self._raw_len
        count = len(ids) // n
        self._sync_refresh()
        _write_all(self._requests, _REQUEST.pack(b"H", count) + ids)
        _, payload = self._response()
        if len(payload) != 8 * count:
            raise EOFError(f"{len(payload)} bytes of sizes for {count} ids")
        sizes = array("q")
        sizes.frombytes(payload)
        out = sizes.tolist()
        if -1 in out:  # failures: read again here, for the error to report
            for k, size in enumerate(out):
                if size == -1:
                    out[k] = self._local_size(ids[k * n:(k + 1) * n])
        return out

    def _sync_refresh(self) -> None:
        generation = self._generation()
        if generation != self._seen_generation:
            # The mount saw the repository change: so must the child, or it
            # would go on serving objects that git has pruned.
            _write_all(self._requests, _REQUEST.pack(b"F", 0))
            self._response()
            self._seen_generation = generation

    def load(self, raw: bytes, size: int | None):
        """The object's bytes, or None when it is too big to hold whole. Runs in a loader thread."""
        results = []
        self.load_many([(raw, size)], lambda key, value, error: results.append((value, error)))
        value, error = results[0]
        if error is not None:
            raise error
        return value

    def load_many(self, items, on_result) -> None:
        """Loads (id, size hint) items in order, calling on_result(id, bytes or None, error)
        for each. Every request goes out first, so the child works through them while this
        thread takes in the answers."""
        answered = 0
        with self._lock:
            if self._alive:
                try:
                    self._sync_refresh()
                    _write_all(self._requests, b"".join(
                        _REQUEST.pack(b"R", 0 if size is None else size + 1) + raw for raw, size in items))
                    for raw, _ in items:
                        status, payload = self._response()
                        on_result(raw, *self._loaded(raw, status, payload))
                        answered += 1
                    return
                except (OSError, EOFError) as e:
                    self._alive = False
                    log.error("object loader process %d failed (%s); loading in the mount process", self.pid, e)
        # The child is gone: do the work here, slower but still right.
        for raw, size in items[answered:]:
            try:
                on_result(raw, self._local_load(raw, size), None)
            except Exception as e:  # handed to the waiting request, which maps it to errno
                on_result(raw, None, e)

    def _local_load(self, raw: bytes, size: int | None):
        if size is None:
            size = self._store.read_size(raw)
        return None if size > self._max_entry else self._store.read(raw)[1]

    @staticmethod
    def _loaded(raw: bytes, status: int, payload) -> tuple:
        """(value, error) from one answer of the child."""
        if status == OK:
            return payload, None
        if status == TOO_BIG:
            return None, None
        if status == NOT_FOUND:
            return None, odb.ObjectNotFound(raw.hex())
        if status == CORRUPT:
            path, offset, reason = payload.decode(errors="replace").split("\0", 2)
            return None, odb.CorruptObject(path, None if offset == "None" else int(offset), reason, oid=raw.hex())
        return None, odb.OdbError(f"object {raw.hex()}: {payload.decode(errors='replace')}")

    def _response(self) -> tuple[int, bytearray]:
        head = _read_exact(self._responses, _RESPONSE.size)
        if head is None:
            raise EOFError("the loader process exited")
        status, length = _RESPONSE.unpack(head)
        payload = _read_exact(self._responses, length) if length else bytearray()
        if payload is None:
            raise EOFError("the loader process exited mid-answer")
        return status, payload

    def close(self) -> None:
        for fd in (self._requests, self._responses):
            _parent_fds.discard(fd)
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
