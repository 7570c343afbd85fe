"""The README's "Using odb as a library" example is docs/odb_example.py, and it prints what
`git ls-tree -r -l` prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "docs" / "odb_example.py"


def test_the_readme_shows_the_example_file():
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"## Using odb as a library\n.*?```python\n(.*?)```\n", readme, re.S)
    assert shown, "no python block under 'Using odb as a library'"
    code = EXAMPLE.read_text().split('"""', 2)[2].lstrip("\n")
    assert shown.group(1) == code


@pytest.mark.parametrize("name, rev", [("refs", "main"), ("refs", "v1.0"), ("sha256", "HEAD"),
                                       ("loose", "HEAD")])
def test_the_example_prints_what_git_ls_tree_prints(fixture_repo, name, rev):
    repo = fixture_repo(name)
    done = subprocess.run([sys.executable, EXAMPLE, repo.path, rev], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    git = subprocess.run(["git", "-c", "core.quotePath=false", "-C", repo.path, "ls-tree", "-r", "-l", rev],
                         capture_output=True, text=True, check=True).stdout
    assert git.count("\n") > 2
    assert done.stdout == git
