"""Packaging: the sdist and wheel built from a clean clone, installed into a fresh venv outside the
checkout, run `gitfs --version` and a mount; the man page and the completion follow the parser."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import gitfs

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "git-odbfs"


def test_man_page_and_completion_are_current():
    done = subprocess.run([sys.executable, ROOT / "scripts" / "make_docs.py", "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def complete(*words: str) -> list[str]:
    """What the bash completion offers for the last of words."""
    script = (f"source {ROOT / 'docs' / 'completion' / 'gitfs'}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; _gitfs; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion():
    assert complete("gitfs", "") == ["mount", "umount", "status", "list", "resolve", "-h", "--help", "--version"]
    assert complete("gitfs", "st") == ["status"]
    assert complete("gitfs", "mount", "--ca") == ["--cache-size"]
    assert complete("gitfs", "mount", "-o", "ro,allow_o") == ["ro,allow_other"]
    assert complete("gitfs", "umount", "-") == ["-h", "--help", "-z", "--lazy"]
    assert complete("gitfs", "mount", "/us") == ["/usr"]


def test_man_page_renders():
    done = subprocess.run(["man", "--warnings", "-l", str(ROOT / "docs" / "gitfs.1")], capture_output=True,
                          text=True, env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"))
    assert done.returncode == 0
    assert done.stderr == "", done.stderr
    for words in ("gitfs umount", "SIGQUIT", "READY=1", "--cache-size", "nonempty", ".refs/", ".tree/REV/",
                  "user.git.mode"):
        assert words in done.stdout
    text = re.sub(".\b", "", done.stdout)  # man's overstrikes (bold) when not on a terminal
    examples = text.split("\nEXAMPLES\n", 1)[1].split("\nSEE ALSO\n", 1)[0]
    lines = [line.strip() for line in examples.splitlines()]
    assert "examples" not in lines  # no second heading under EXAMPLES
    # The fstab line stands alone, not run into the sentence around it.
    assert "/srv/git/project.git  /mnt/objs  fuse.gitfs  ro,noauto,allow_other  0  0" in lines
    assert any(line.startswith("ls -l /mnt/objs/.refs/heads") for line in lines)
    assert any(line.startswith("ls /mnt/objs/.tree/main/src") for line in lines)
    assert any(line.startswith("cat /mnt/objs/.tree/v1.0/README.md") for line in lines)


def test_the_readme_and_the_docs_pages_link_to_what_exists():
    """The README keeps the user's side and links the rest (docs/*.md): no link may dangle."""
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
    readme = (ROOT / "README.md").read_text()
    for heading in ("## Two commands", "## Installing", "## Mounting your own repository", "## Performance",
                    "## Using odb as a library", "## Limitations"):
        assert f"\n{heading}\n" in readme, heading
    assert len(readme) < 32_000, "the internals belong in docs/"


def test_build_outputs_are_ignored_by_git():
    """`python -m build` and `pip wheel -w dist` write dist/; a `git add .` after them must not take it."""
    for path in (f"dist/git_odbfs-{gitfs.__version__}-cp311-cp311-linux_x86_64.whl",
                 f"dist/git_odbfs-{gitfs.__version__}.tar.gz", "build/lib/gitfs/cli/main.py", ".venv/bin/python"):
        done = subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", "--no-index", path])
        assert done.returncode == 0, f"{path} is not ignored"


def test_help_says_what_the_mount_shows():
    done = subprocess.run([sys.executable, "-m", "gitfs", "--help"], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    for words in (".refs/", ".tree/REV/", "ls -l /mnt/objs/.refs/heads", "ls /mnt/objs/.tree/main/src",
                  "cat /mnt/objs/.tree/v1.0/README.md"):
        assert words in done.stdout, words


# -- build, install, run --------------------------------------------------------------------------


def wheel_of_installed(name: str, dest: Path) -> Path:
    """A wheel made of an installed distribution's own files (its RECORD): the shared venv's
    pyfuse3 (patched and compiled by scripts/bootstrap) goes into the fresh venv without a
    rebuild, which would need the network and a minute of compiling."""
    dist = importlib.metadata.distribution(name)
    info = dist.read_text("WHEEL")
    tag = next(line.split(": ", 1)[1] for line in info.splitlines() if line.startswith("Tag: "))
    path = dest / f"{name}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for file in dist.files:
            arcname = str(file)
            if (arcname.startswith("..") or "__pycache__" in arcname
                    or file.name in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")):
                continue
            data = file.locate().read_bytes()
            whl.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.writerow([arcname, f"sha256={digest}", len(data)])
        record_name = f"{name}-{dist.version}.dist-info/RECORD"
        rows.writerow([record_name, "", ""])
        whl.writestr(record_name, record.getvalue())
    return path


def run(argv, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}: {done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, dist directory) once: a clean clone of HEAD, built into an sdist and a wheel (the
    wheel built from the sdist, which proves the sdist complete), installed into a fresh venv."""
    tmp = tmp_path_factory.mktemp("packaging")
    source, dist, wheels, venv = tmp / "source", tmp / "dist", tmp / "wheels", tmp / "venv"
    wheels.mkdir()
    run(["git", "clone", "-q", "--no-hardlinks", ROOT, source])
    wheel_of_installed("pyfuse3", wheels)
    # Outside the checkout: no PYTHONPATH, and a working directory that holds no gitfs.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run([sys._base_executable, "-m", "venv", venv], env=env, cwd=tmp)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", "build"], env=env, cwd=tmp)
    run([venv / "bin" / "python", "-m", "build", "--outdir", dist, source], env=env, cwd=tmp)
    (wheel,) = dist.glob("*.whl")
    run([*pip, "install", "--find-links", wheels, wheel], env=env, cwd=tmp)
    return venv, dist, env


def test_the_wheel_holds_the_packages_docs_and_metadata_only(installed):
    _, dist, _ = installed
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(f"git_odbfs-{gitfs.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".h"))], "C sources in the wheel"
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "fixtures/"))]
    # Every module of both packages, subpackages too (pyproject.toml lists them one by one).
    modules = sorted(str(p.relative_to(ROOT)) for top in ("odb", "gitfs") for p in (ROOT / top).rglob("*.py"))
    assert [m for m in modules if m not in names] == []
    assert any(n.startswith("odb/_delta") and n.endswith(".so") for n in names), "no C accelerator built"
    assert any(n.startswith("odb/_sizes") and n.endswith(".so") for n in names), "no C size accelerator built"
    assert any(n.startswith("odb/_engine") and n.endswith(".so") for n in names), "no C object engine built"
    data = f"git_odbfs-{gitfs.__version__}.data/data/share/"
    assert data + "man/man1/gitfs.1" in names and data + "bash-completion/completions/gitfs" in names
    # The fast path needs nothing from the checkout: python -m gitfs.patched_pyfuse3 and its patch.
    assert "gitfs/patched_pyfuse3.py" in names and "gitfs/pyfuse3-read-by-inode.patch" in names
    assert "gitfs/pyfuse3-spin.patch" in names and "gitfs/pyfuse3-fast-path.patch" in names
    assert any(n.startswith("gitfs/fuse/_request_path") and n.endswith(".so") for n in names), "no request path"
    metadata = zipfile.ZipFile(wheel).read(f"git_odbfs-{gitfs.__version__}.dist-info/METADATA").decode()
    for field in ("Name: git-odbfs", f"Version: {gitfs.__version__}", "License-Expression: MIT",
                  "Requires-Python: >=3.11", "Classifier: Operating System :: POSIX :: Linux",
                  "Requires-Dist: pyfuse3", "Requires-Dist: trio"):
        assert field in metadata
    assert f"git_odbfs-{gitfs.__version__}.dist-info/licenses/LICENSE" in names


def test_the_sdist_is_the_whole_project(installed):
    _, dist, _ = installed
    (sdist,) = dist.glob("*.tar.gz")
    top = f"git_odbfs-{gitfs.__version__}/"
    names = {n.removeprefix(top) for n in tarfile.open(sdist).getnames()}
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    wanted = [n for n in tracked if not n.startswith(".gitignore")]
    assert [n for n in wanted if n not in names] == []


def test_the_installed_command_runs_and_mounts(installed, fixture_repo, fuse_available, tmp_path):
    venv, _, env = installed
    gitfs_bin = venv / "bin" / "gitfs"
    version = run([gitfs_bin, "--version"], env=env, cwd="/").stdout.splitlines()
    assert version[0] == f"gitfs {gitfs.__version__}"
    assert "C delta accelerator: yes" in version
    assert "C size accelerator: yes" in version
    assert "no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): yes" in version
    assert "requests awaited awake (pyfuse3.set_spin, patched pyfuse3): yes" in version
    assert "lookups and reads answered in C (gitfs/fuse/_request_path.c): yes" in version
    where = run([venv / "bin" / "python", "-c", "import gitfs, odb, importlib.metadata as m; "
                 f"print(gitfs.__file__, odb.__file__, m.version('{DISTRIBUTION}'))"], env=env, cwd="/").stdout.split()
    assert all(p.startswith(str(venv)) for p in where[:2]) and where[2] == gitfs.__version__
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    repo = fixture_repo("bare")
    run([gitfs_bin, "mount", "--log-file", tmp_path / "log", repo.path, mnt], env=env, cwd="/")
    try:
        head = repo.git.rev_parse("HEAD")
        assert (mnt / head[:2] / head[2:]).read_bytes() == repo.git.read(head)[1]
    finally:
        run([gitfs_bin, "umount", mnt], env=env, cwd="/")
    page = run(["man", "-w", "gitfs"], env=dict(env, PATH=f"{venv / 'bin'}:{env['PATH']}"), cwd="/").stdout.strip()
    assert page == str(venv / "share" / "man" / "man1" / "gitfs.1")
    assert (venv / "share" / "bash-completion" / "completions" / "gitfs").is_file()


def test_the_plainest_install_falls_back_and_serves(installed, fixture_repo, fuse_available, tmp_path):
    """No compiler for our extension and stock pyfuse3 from the index (what `pip install git-odbfs`
    gives a user): the build warns, --version says both, and every object of a delta fixture is
    served right. (pyfuse3 is compiled by pip here unless its wheel cache has it: up to a minute.)"""
    venv, dist, env = installed
    source = dist.parent / "source"
    done = run([venv / "bin" / "python", "-m", "build", "--wheel", "--outdir", tmp_path / "dist", source],
               env=dict(env, CC="/bin/false"), cwd=tmp_path)
    assert "WARNING: the C delta accelerator (odb/_delta.c) could not be built" in done.stdout + done.stderr
    assert "WARNING: the C size accelerator (odb/_sizes.c) could not be built" in done.stdout + done.stderr
    assert "WARNING: the C object engine (odb/_engine.c) could not be built" in done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
    plain = tmp_path / "venv"
    run([sys._base_executable, "-m", "venv", plain], env=env, cwd=tmp_path)
    run([plain / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install", wheel],
        env=env, cwd=tmp_path)
    version = run([plain / "bin" / "gitfs", "--version"], env=env, cwd="/").stdout.splitlines()
    assert "C delta accelerator: no" in version
    assert "C size accelerator: no" in version
    assert "C object engine: no" in version
    command = f"{plain}/bin/python -m gitfs.patched_pyfuse3"
    assert (f"no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): no (stock pyfuse3: 3 kernel requests per "
            f"file read instead of 1; for the fast path run: {command})") in version
    repo = fixture_repo("ofs-delta")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run([plain / "bin" / "gitfs", "mount", "--log-file", tmp_path / "log", repo.path, mnt], env=env, cwd="/")
    try:
        for oid, kind, data in repo.git.contents(repo.git.ids()):
            assert (mnt / oid[:2] / oid[2:]).read_bytes() == data
    finally:
        run([plain / "bin" / "gitfs", "umount", mnt], env=env, cwd="/")
    log = (tmp_path / "log").read_text()
    assert "the C delta accelerator (odb/_delta.c) is not built" in log
    (mounted,) = [line for line in log.splitlines() if f"mounted {repo.path} on {mnt}" in line]
    assert f"for the fast path run: {command}, then mount again" in mounted


def test_each_accelerator_builds_on_its_own(installed, tmp_path):
    """Without zlib's headers (here: a compiler that refuses the sources that include zlib.h) the
    delta accelerator and the tree indexer are still built, and the warnings name the size
    accelerator and the engine alone; without libdeflate's (a compiler that refuses
    -DHAVE_LIBDEFLATE) the engine is built with zlib."""
    venv, dist, env = installed

    def build(refuse: str, name: str) -> tuple[str, list[str]]:
        cc = tmp_path / f"cc-{name}"
        cc.write_text(f'#!/bin/sh\nfor a; do case "$a" in {refuse}) echo "header: No such file" >&2; exit 1;; esac; done\n'
                      'exec gcc "$@"\n')
        cc.chmod(0o755)
        out = tmp_path / f"dist-{name}"
        done = run([venv / "bin" / "python", "-m", "build", "--wheel", "--outdir", out, dist.parent / "source"],
                   env=dict(env, CC=str(cc)), cwd=tmp_path)
        (wheel,) = out.glob("*.whl")
        return done.stdout + done.stderr, sorted(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so"))

    output, built = build("*_sizes.c|*_engine.c", "no-zlib")
    assert "WARNING: the C size accelerator (odb/_sizes.c) could not be built" in output
    assert "WARNING: the C object engine (odb/_engine.c) could not be built" in output
    assert "WARNING: the C delta accelerator" not in output
    # The request path builds without zlib; it runs only beside the engine (it imports its API).
    assert [n.split(".")[0] for n in built] == ["gitfs/fuse/_request_path", "odb/_delta", "odb/_tree"], built

    output, built = build("-DHAVE_LIBDEFLATE*", "no-libdeflate")
    assert "odb._engine: building with zlib, not libdeflate" in output
    assert "could not be built" not in output
    assert [n.split(".")[0] for n in built] == ["gitfs/fuse/_request_path", "odb/_delta", "odb/_engine",
                                                "odb/_sizes", "odb/_tree"], built


@pytest.mark.skipif(os.environ.get("GITFS_TEST_PYFUSE3_BUILD") != "1",
                    reason="compiles pyfuse3 from source (about 70 s): set GITFS_TEST_PYFUSE3_BUILD=1")
def test_install_pyfuse3_patches_any_venv(installed, tmp_path):
    """The command `gitfs --version` names for a wheel-only installation (pipx's, say)."""
    _, dist, env = installed
    venv = tmp_path / "venv"
    run([sys._base_executable, "-m", "venv", venv], env=env, cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")
    run([venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install", wheel],
        env=env, cwd=tmp_path)
    run([venv / "bin" / "python", "-m", "gitfs.patched_pyfuse3"], env=env, cwd=tmp_path)
    version = run([venv / "bin" / "gitfs", "--version"], env=env, cwd="/").stdout
    assert "no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): yes" in version


DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(not (Path("/etc/debian_version").exists() and DEBIAN_PYTHON.exists()),
                    reason="the README's recipe is for Debian's own Python")
def test_the_readme_recipe_works_on_debian_s_python(tmp_path):
    """The README's Installing commands, run as written by /usr/bin/python3 (PEP 668 refuses a
    pip install outside a venv there) in a clean clone, end at a working `gitfs --version` and
    `man gitfs`. pip takes this venv's patched pyfuse3 wheel (PIP_FIND_LINKS, PIP_CONSTRAINT) instead
    of compiling one, so the fast-path step finds it done (test_install_pyfuse3_patches_any_venv
    builds it)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Installing\n", 1)[1].split("\n## ", 1)[0]
    recipe = section.split("/usr/bin/python3", 1)[1].split("```\n", 2)[1]
    lines = recipe.strip().splitlines()
    assert lines[0].startswith("sudo apt-get install ")
    packages = lines[0].split()[3:]
    missing = [p for p in packages if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                                     text=True).stdout != "install ok installed"]
    if missing:
        pytest.skip(f"system packages the recipe installs are missing here: {' '.join(missing)}")
    source, home, wheels = tmp_path / "source", tmp_path / "home", tmp_path / "wheels"
    home.mkdir()
    wheels.mkdir()
    run(["git", "clone", "-q", "--no-hardlinks", ROOT, source])
    wheel_of_installed("pyfuse3", wheels)
    (tmp_path / "constraints.txt").write_text(f"pyfuse3=={importlib.metadata.version('pyfuse3')}\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PAGER": "cat", "MANPAGER": "cat",
           "MANWIDTH": "80", "PIP_FIND_LINKS": str(wheels), "PIP_CONSTRAINT": str(tmp_path / "constraints.txt"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # Debian's python3 itself refuses what the README used to say (PEP 668).
    refused = subprocess.run(["python3", "-m", "pip", "install", "build"], capture_output=True, text=True, env=env,
                             cwd=source)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    done = subprocess.run(["bash", "-euc", "\n".join(lines[1:])], capture_output=True, text=True, env=env,
                          cwd=source, stdin=subprocess.DEVNULL, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    venv_python = home / ".venvs" / "gitfs" / "bin" / "python"
    assert os.path.realpath(venv_python).startswith("/usr/bin/python3")
    assert f"gitfs {gitfs.__version__}\n" in done.stdout
    assert "no-open reads (FUSE_NO_OPEN_SUPPORT, patched pyfuse3): yes" in done.stdout
    assert "GITFS(1)" in done.stdout and "gitfs mount" in done.stdout  # man gitfs
    # ... the venv's own page, found through its bin on PATH (not a page scripts/bootstrap linked).
    where = run(["man", "-w", "gitfs"], env=dict(env, PATH=f"{venv_python.parent}:{env['PATH']}"), cwd="/")
    assert where.stdout.strip() == str(home / ".venvs" / "gitfs" / "share" / "man" / "man1" / "gitfs.1")
