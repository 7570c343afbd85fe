"""Benchmark repository preparation: a bare copy split into several packs under one multi-pack-index.

The reference repository (git's own history at v2.55.0: 402,064 objects, 5 packs + midx) is
    scripts/bench --prepare /work/.mirror/git+git/repo --ref v2.55.0 --max-pack-size 85m \
        --only prepare /work/bench/git-400k.git
which prints each git command it runs (init --bare, fetch of the one ref, repack, midx write).
"""

import os
import shlex
import subprocess

from bench_git import GitError, git


def run_logged(cmd):
    print("+ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise GitError(f"{shlex.join(cmd[:4])}: {lines[-1]}")


def full_ref_name(source, ref):
    """refs/... name of ref in source, so a tag is fetched as a tag and a branch as a branch."""
    if ref.startswith("refs/"):
        return ref
    name = git(source, "rev-parse", "--symbolic-full-name", ref).strip()
    if not name:
        # rev-parse prints nothing for a tag given by its short name.
        name = "refs/tags/" + ref if git(source, "tag", "--list", ref).strip() else ""
    if not name:
        raise GitError(f"{ref}: not a branch or tag of {source}")
    return name


def prepare(source, dest, ref=None, max_pack_size="100m"):
    """Build dest from source's objects (all refs, or one ref's history), repacked and indexed."""
    if os.path.exists(dest):
        raise GitError(f"{dest} already exists; remove it or choose another destination")
    source = os.path.abspath(source)
    object_format = git(source, "rev-parse", "--show-object-format").strip()
    refspec = "+refs/*:refs/*"
    if ref:
        name = full_ref_name(source, ref)
        refspec = f"+{name}:{name}"
    run_logged(["git", "init", "--quiet", "--bare", f"--object-format={object_format}", dest])
    run_logged(["git", "-C", dest, "fetch", "--quiet", "--no-tags", source, refspec])
    run_logged(["git", "-C", dest, "repack", "-q", "-a", "-d", f"--max-pack-size={max_pack_size}"])
    run_logged(["git", "-C", dest, "multi-pack-index", "write"])
    counts = dict(line.split(": ", 1) for line in git(dest, "count-objects", "-v").splitlines())
    print(f"prepared {dest}: {counts['in-pack']} objects in {counts['packs']} packs + multi-pack-index")
