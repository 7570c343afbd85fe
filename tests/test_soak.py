"""scripts/soak: a short run each way reports its figures and exits 0 on a healthy tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def soak(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ROOT / "scripts" / "soak", "--minutes", "0.05", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)


@pytest.mark.parametrize("way", ["library", "mount"])
def test_a_short_soak_passes(request, way):
    if way == "mount":
        request.getfixturevalue("fuse_available")
    done = soak(*(["--mount"] if way == "mount" else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"soak ({way}, midx, 2 readers)" in done.stdout
    reads = int(re.search(r"reads: (\d+) ok", done.stdout).group(1))
    assert reads > 0
    assert "wrong bytes: 0" in done.stdout and "errors other than ENOENT for pruned objects: 0" in done.stdout
    assert re.search(r"gc --prune=now x\d+", done.stdout)


def test_soak_refuses_nonsense():
    done = subprocess.run([ROOT / "scripts" / "soak", "--minutes", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and "--minutes" in done.stderr
