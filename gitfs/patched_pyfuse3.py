"""Builds pyfuse3 with pyfuse3-read-by-inode.patch, pyfuse3-spin.patch and pyfuse3-fast-path.patch
(shipped beside this module) into this Python's environment: the fast path `gitfs --version` calls
"no-open reads".

    VENV/bin/python -m gitfs.patched_pyfuse3

Stock pyfuse3 passes read() only the file handle, which is 0 for every file once the kernel
stops sending OPEN; the first patch passes the inode instead. Without it gitfs works, opening
files the ordinary way: three kernel requests per file read instead of one. The second lets the
session loop wait for the next request awake for a moment (pyfuse3.set_spin), which halves a
round trip; gitfs works without it too. The third offers each request to a compiled handler
first (pyfuse3.set_fast_path), which answers the LOOKUP and READ of object files without Python
(gitfs/fuse/_request_path.c). The command is in the
wheel, so that an installation made from the wheel alone can take the fast path; it needs the
package index (pyfuse3's sdist), libfuse3-dev, pkg-config, a C compiler, the Python headers and
git (git apply). Quiet when pyfuse3 is patched already; standard library only, as it runs
before gitfs's own dependencies may be installed (scripts/bootstrap).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PYFUSE3_VERSION = "3.5.0"
PATCHES = tuple(Path(__file__).with_name(name)
                for name in ("pyfuse3-read-by-inode.patch", "pyfuse3-spin.patch", "pyfuse3-fast-path.patch"))
PROG = "gitfs.patched_pyfuse3"


def command() -> str:
    """What to run for the fast path in this Python's environment."""
    return f"{sys.executable} -m {PROG}"


def is_patched(python: str = sys.executable) -> bool:
    probe = ('import sys, pyfuse3; sys.exit(not (getattr(pyfuse3, "READ_FH_IS_INODE_WITHOUT_OPEN", False)'
             ' and hasattr(pyfuse3, "set_spin") and hasattr(pyfuse3, "set_fast_path")))')
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def build(work: Path) -> tuple[bool, str]:
    """(patched pyfuse3 installed, what the failing step printed)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    source = work / f"pyfuse3-{PYFUSE3_VERSION}"
    steps = [
        # From the sdist, as pip builds pyfuse3 anyway (it ships no wheels). Only pyfuse3 itself:
        # with ":all:" pip also compiles its build requirements (Cython) from source, minutes more.
        [*pip, "download", "--no-deps", "--no-binary", "pyfuse3", f"pyfuse3=={PYFUSE3_VERSION}", "-d", str(work)],
        None,  # unpack
        *(["git", "apply", "-p1", str(patch)] for patch in PATCHES),
        [*pip, "install", str(source)],
    ]
    for step in steps:
        if step is None:
            with tarfile.open(work / f"pyfuse3-{PYFUSE3_VERSION}.tar.gz") as sdist:
                # The "data" filter (3.11.4+, and Debian's 3.11.2) refuses links and paths out of work.
                sdist.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            continue
        try:
            done = subprocess.run(step, cwd=source if step[0] == "git" else work, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError as e:
            return False, f"{step[0]} not found ({e.strerror})"
        if done.returncode != 0:
            return False, (done.stdout + done.stderr).strip()
    return is_patched(), ""


def main() -> int:
    if is_patched():
        return 0
    say = lambda text: print(f"{PROG}: {text}", file=sys.stderr)  # noqa: E731
    say(f"building pyfuse3 {PYFUSE3_VERSION} with {' and '.join(p.name for p in PATCHES)} into {sys.prefix}")
    with tempfile.TemporaryDirectory() as work:
        ok, output = build(Path(work))
    if ok:
        return 0
    for line in output.splitlines()[-5:]:
        print(line, file=sys.stderr)
    say("warning: the patched pyfuse3 could not be built; mounts fall back to ordinary opens")
    say("         (slower; `gitfs --version` says which is in use)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
