"""A user who is not root: mounts through fusermount3, logs under $XDG_STATE_HOME, and the commands
read the mount table as root's do. Run in a private mount namespace whose /dev/fuse is open to
every user (this machine's is root's only), so nothing of it is seen outside the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cli_checks import NOBODY
from mounting import ENV

SCRIPT = r"""
set -u
mount --bind "$WORK/fuse" /dev/fuse
as_user() { setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups "$PYTHON" -m gitfs "$@"; echo "rc=$?"; }
trap 'fusermount3 -u -z "$WORK/mnt" 2>/dev/null' EXIT
as_user mount "$REPO" "$WORK/mnt"
as_user status --json
as_user resolve "$WORK/mnt" "$PREFIX"
as_user umount "$WORK/mnt"
# The daemon logs its last line once it has shut down, a moment after the unmount.
for _ in $(seq 100); do grep -qs unmounted "$HOME/.local/state/gitfs/gitfs.log" && break; sleep 0.1; done
grep -c " $WORK/mnt " /proc/self/mountinfo || true
"""


@pytest.fixture
def work():
    path = Path(tempfile.mkdtemp(prefix="gitfs-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_user_mounts_through_fusermount3(fixture_repo, fuse_available, work):
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.fail("unshare and setpriv (util-linux) are needed")
    fuse = os.stat("/dev/fuse")
    os.mknod(work / "fuse", 0o666 | 0o020000, fuse.st_rdev)
    (work / "fuse").chmod(0o666)
    repo = work / "we,ird\\ name"  # libfuse splits options at commas: the fsname is escaped
    shutil.copytree(fixture_repo("bare").path, repo)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    for d in ("mnt", "home"):
        (work / d).mkdir()
        os.chown(work / d, NOBODY, NOBODY)
    head = fixture_repo("bare").git.rev_parse("HEAD")
    env = dict(ENV, WORK=str(work), REPO=str(repo), PYTHON=sys.executable, USER_ID=str(NOBODY), PREFIX=head[:10],
               HOME=str(work / "home"))
    env.pop("XDG_STATE_HOME", None)
    env.pop("GITFS_LOG_FILE", None)  # this test's HOME is the user's: the default log is inside it
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = done.stdout.splitlines()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert out[0] == "rc=0", done.stdout + done.stderr
    listing = json.loads("\n".join(out[1:out.index("rc=0", 1)]))
    (mine,) = [m for m in listing if m["mountpoint"] == str(work / "mnt")]
    assert mine["repository"] == str(repo) and mine["health"] == "healthy"
    assert out[out.index("rc=0", 1) + 1:] == [head, "rc=0", "rc=0", "0"], done.stdout + done.stderr
    log = (work / "home" / ".local" / "state" / "gitfs" / "gitfs.log").read_text()
    assert f"mounted {repo} on {work / 'mnt'}" in log and f"unmounted {work / 'mnt'}" in log
