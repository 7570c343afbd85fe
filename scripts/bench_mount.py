"""Benchmark mount side: start a fresh gitfs mount, run a command through it, read its counters and RSS."""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from bench_git import timed_stream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNMOUNT_WAIT_S = 10.0
STATUS_XATTR = "user.gitfs.status"
# The kernel's requests, by the name of the pyfuse3 handler that answers them; the status of a
# gitfs mount counts other events beside them (loads waited for, inodes forgotten).
KERNEL_REQUESTS = frozenset((
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
    "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir",
    "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr", "removexattr", "access",
    "create"))


class MountError(Exception):
    """The mount could not be started or stopped; the message is one line."""


def gitfs_command():
    """`python -m gitfs` from this checkout, whatever is installed in the venv."""
    return [sys.executable, "-m", "gitfs"]


def gitfs_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def first_line(text, fallback):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def process_table():
    """{pid: (parent pid, argv)} of every process we can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (ppid, argv)
    return table


def find_daemon(mountpoint):
    """Pid of the process serving mountpoint: its command line names `mount` and the mountpoint.

    Helpers the daemon forks carry the same command line; the daemon is the one whose
    parent is not such a process.
    """
    table = process_table()
    me = os.getpid()
    matches = {pid for pid, (_, argv) in table.items()
               if pid != me and mountpoint.encode() in argv and b"mount" in argv
               and any(b"gitfs" in a for a in argv)}
    roots = sorted(pid for pid in matches if table[pid][0] not in matches)
    return roots[0] if roots else None


def process_tree(pid):
    """pid and every process descended from it (a mount may fork helpers that do its work)."""
    children = {}
    for child, (ppid, _) in process_table().items():
        children.setdefault(ppid, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pid):
    """User + system CPU seconds pid has used so far (all its threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid):
    """CPU seconds of pid and its living descendants together, or None if pid is gone."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(p) or 0 for p in process_tree(pid) if p != pid)


def memory_status(pid):
    """VmHWM, VmRSS, RssAnon and RssFile of pid in bytes (missing ones absent)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    found[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def proportional_set(pid):
    """{"Pss": bytes} of pid (its share of each page it maps), or {} if it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return {"Pss": int(line.split()[1]) * 1024}
    except OSError:
        pass
    return {}


class MemoryWatch:
    """Samples the resident set of a process and its helpers while a workload runs.

    VmHWM is the kernel's exact peak of one process's resident set; for several
    processes their sum bounds the peak of the total from above. It counts the
    mmap'd pack pages (page cache shared with every reader) together with the
    processes' own memory, so the anonymous part is sampled to tell them apart.
    """

    INTERVAL_S = 0.02

    def __init__(self, pid):
        self.pid = pid
        self.peak = {}
        self._hwm = {}  # pid -> its VmHWM
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            self._sample()
            if self._stop.wait(self.INTERVAL_S):
                return

    def _sample(self):
        pids = process_tree(self.pid) if os.path.exists(f"/proc/{self.pid}") else []
        total = {"RssAnon": 0, "RssFile": 0}
        for pid in pids:
            status = memory_status(pid)
            for key in total:
                total[key] += status.get(key, 0)
            if "VmHWM" in status:
                self._hwm[pid] = max(self._hwm.get(pid, 0), status["VmHWM"])
        for key, value in total.items():
            self.peak[key] = max(self.peak.get(key, 0), value)
        self.peak["processes"] = max(self.peak.get("processes", 0), len(pids))

    def stop(self):
        """Peaks seen: {"VmHWM": sum over the processes, "RssAnon"/"RssFile": peak sums, "processes"}."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()
        return dict(self.peak, VmHWM=sum(self._hwm.values()))


class FreshMount:
    """A gitfs mount started for one measurement and torn down after it."""

    def __init__(self, repo, extra_args=()):
        self.repo = os.path.abspath(repo)
        self.extra_args = list(extra_args)
        self.mountpoint = None
        self.pid = None
        self.mount_seconds = None
        self._watch = None

    def __enter__(self):
        self.mountpoint = tempfile.mkdtemp(prefix="gitfs-bench-")
        cmd = gitfs_command() + ["mount", *self.extra_args, self.repo, self.mountpoint]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=gitfs_env(), stdin=subprocess.DEVNULL)
        self.mount_seconds = time.perf_counter() - start
        if proc.returncode != 0:
            self._remove_mountpoint()
            raise MountError("gitfs mount: " + first_line(proc.stderr, f"exit status {proc.returncode}"))
        if not os.path.ismount(self.mountpoint):
            self._remove_mountpoint()
            raise MountError("gitfs mount exited 0 but the mountpoint is not a mount")
        status = self.status()
        self.pid = status.get("pid") if status else find_daemon(self.mountpoint)
        self._watch = MemoryWatch(self.pid) if self.pid else None
        return self

    def status(self):
        """What the mount says of itself (user.gitfs.status of its root), or None."""
        try:
            return json.loads(os.getxattr(self.mountpoint, STATUS_XATTR))
        except (OSError, ValueError):
            return None

    def requests(self):
        """Kernel requests the mount has answered so far, by kind, or None if it does not say."""
        status = self.status()
        if not status or not isinstance(status.get("requests"), dict):
            return None
        return {k: v for k, v in status["requests"].items() if k in KERNEL_REQUESTS}

    def processes(self):
        """Pids of the mount's processes: the daemon and the helpers it names in its status."""
        status = self.status() or {}
        pids = [status.get("pid", self.pid)] + list(status.get("helpers") or ())
        return [pid for pid in pids if isinstance(pid, int)]

    def resident(self):
        """{"VmRSS", "RssAnon", "RssFile", "Pss"} summed over processes() now, in bytes. The RSS
        sum counts a page every process maps (the packs, the midx) once per process; the PSS sum
        counts it once."""
        total = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "Pss": 0}
        for pid in self.processes():
            for key, value in (memory_status(pid) | proportional_set(pid)).items():
                if key in total:
                    total[key] += value
        return total

    def cpu(self):
        return tree_cpu_seconds(self.pid) if self.pid else None

    def peak_memory(self):
        """Peak memory of the daemon since it started (see MemoryWatch), or None."""
        return self._watch.stop() if self._watch else None

    def __exit__(self, *exc):
        self.unmount()
        return False

    def unmount(self):
        if self._watch:
            self._watch.stop()
        if self.mountpoint is None:
            return
        proc = subprocess.run(
            gitfs_command() + ["umount", self.mountpoint], capture_output=True, text=True, env=gitfs_env()
        )
        if proc.returncode != 0 and os.path.ismount(self.mountpoint):
            # The CLI's own unmount failed: do not leak the mount.
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
        self._wait_for_daemon_exit()
        self._remove_mountpoint()

    def _wait_for_daemon_exit(self):
        # The next measurement must not share the CPUs with a daemon still shutting down.
        deadline = time.monotonic() + UNMOUNT_WAIT_S
        while self.pid and time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{self.pid}") or _is_zombie(self.pid):
                return
            time.sleep(0.02)

    def _remove_mountpoint(self):
        try:
            os.rmdir(self.mountpoint)
        except OSError:
            pass
        self.mountpoint = None


class FloorMount(FreshMount):
    """The in-memory pyfuse3 filesystem of bench_floor.py, for the floor rows of (1) and (2);
    levers: with gitfs's protocol levers (no open, page-cache push, 1 MiB directory blocks,
    reused attributes)."""

    LOAD_WAIT_S = 300.0

    def __init__(self, repo, ids_path, levers=False):
        super().__init__(repo)
        self.ids_path = ids_path
        self.levers = levers
        self.proc = None

    def __enter__(self):
        self.mountpoint = tempfile.mkdtemp(prefix="gitfs-bench-floor-")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_floor.py")
        cmd = [sys.executable, script, *(["--levers"] if self.levers else []), self.repo, self.mountpoint,
               self.ids_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.LOAD_WAIT_S
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                err = self.proc.communicate()[1].decode(errors="replace")
                self._remove_mountpoint()
                raise MountError("bench_floor.py: " + first_line(err, "did not mount"))
            time.sleep(0.05)
        self.pid = self.proc.pid
        self._watch = MemoryWatch(self.pid)
        return self

    def unmount(self):
        if self._watch:
            self._watch.stop()
        if self.mountpoint is None:
            return
        subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True)
        try:
            self.proc.wait(timeout=UNMOUNT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
            self.proc.wait()
        self._remove_mountpoint()


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def through_mount(mount, run_command):
    """(Run, CPU seconds of the command and the daemon together) for one command on the mount."""
    before = mount.cpu()
    run = run_command()
    after = mount.cpu()
    cpu = run.cpu + (after - before) if before is not None and after is not None else None
    return run, cpu


def grep_buckets(mount, buckets, pattern):
    """`grep -r -F pattern` over the given bucket directories: (Run, cpu, error line or None)."""
    cmd = ["grep", "-r", "-F", "-e", pattern] + [os.path.join(mount.mountpoint, b) for b in buckets]
    env = dict(os.environ, LC_ALL="C")  # byte semantics: no UTF-8 decoding cost in grep itself
    run, cpu = through_mount(mount, lambda: timed_stream(cmd, env=env))
    # grep exits 1 when nothing matched, 2 on an error (for example EIO from the mount).
    return run, cpu, (first_line(run.stderr, "grep failed") if run.status > 1 else None)


def count_files(mount, buckets):
    cmd = ["find"] + [os.path.join(mount.mountpoint, b) for b in buckets] + ["-type", "f"]
    run = timed_stream(cmd, count_lines=True)
    return run.lines, (first_line(run.stderr, "find failed") if run.status != 0 else None)


def find_larger_than_1k(mount):
    """`find MNT -type f -size +1k`: (Run with the match count in .lines, cpu, error line or None)."""
    cmd = ["find", mount.mountpoint, "-type", "f", "-size", "+1k"]
    run, cpu = through_mount(mount, lambda: timed_stream(cmd, count_lines=True))
    return run, cpu, (first_line(run.stderr, "find failed") if run.status != 0 else None)


def requests_during(mount, work, *args):
    """(work(*args), the kernel requests the mount answered meanwhile by kind, or None)."""
    before = mount.requests()
    result = work(*args)
    after = mount.requests()
    again = mount.requests()
    if before is None or after is None or again is None:
        return result, None
    # Reading the status is a request or two of its own (os.getxattr retries with a bigger buffer
    # when the value is longer than its first one): what one read costs is taken off.
    delta = {k: v - before.get(k, 0) - (again.get(k, 0) - v) for k, v in after.items()}
    return result, {k: v for k, v in delta.items() if v}


def list_long(mount, paths, out_path, recursive=False):
    """`ls -lA` (or `ls -lAR`) of paths, output to out_path: (Run, cpu, error line or None).
    -A: without it ls leaves out names starting with "." (.gitignore, .github/), which git lists."""
    cmd = ["ls", "-lAR" if recursive else "-lA", "--", *paths]
    env = dict(os.environ, LC_ALL="C")
    run, cpu = through_mount(mount, lambda: timed_stream(cmd, env=env, stdout_path=out_path))
    return run, cpu, (first_line(run.stderr, "ls failed") if run.status != 0 else None)


def read_files(mount, cwd, paths_file, count=False):
    """`xargs -0 cat` of the NUL-separated paths in paths_file (relative to cwd), in their order:
    (Run, with the bytes read in .bytes when count, cpu, error line or None)."""
    cmd = ["xargs", "-0", "-r", "-a", paths_file, "cat", "--"]
    run, cpu = through_mount(mount, lambda: timed_stream(cmd, cwd=cwd, count_lines=count))
    return run, cpu, (first_line(run.stderr, "cat failed") if run.status != 0 else None)


# mode links user group size month day time, then one space and the name as it is: split()
# would eat a name's leading spaces.
LS_LINE = re.compile(rb"(?:\S+ +){4}(?P<size>\d+) +(?:\S+ +){2}\S+ (?P<name>.*)", re.DOTALL)


def parse_ls(path, single=None):
    """{directory: {name: size}} of the regular files in `ls -l`/`ls -lR` output of absolute paths
    (LC_ALL=C, not a tty, so names are printed as they are), and the count of directories and
    symlinks; single names the directory when ls was given only one and printed no header."""
    files, others, current = {}, 0, single
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line.startswith(b"/") and line.endswith(b":"):
                current = os.fsdecode(line[:-1])
                continue
            if line.startswith(b"-"):
                fields = LS_LINE.match(line)
                files.setdefault(current, {})[os.fsdecode(fields["name"])] = int(fields["size"])
            elif line[:1] in (b"d", b"l"):
                others += 1
    return files, others
