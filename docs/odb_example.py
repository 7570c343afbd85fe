"""Prints the files of a revision as `git ls-tree -r -l REV` does, with the odb library alone.

    python3 docs/odb_example.py REPO [REV]

The README shows this file; tests/odb/test_readme_example.py runs it against git.
"""

import sys

import odb


def walk(store, tree_id, prefix=""):
    """Yields (mode, kind, id, size, path) for every entry below tree_id, in git's order."""
    for entry in odb.Tree(store.read(tree_id)[1], store.format, tree_id):
        path = prefix + entry.name.decode(errors="surrogateescape")
        if entry.mode == odb.tree.TREE:
            yield from walk(store, entry.oid, path + "/")
        elif entry.mode == odb.tree.GITLINK:  # a submodule: its commit is not in this repository
            yield entry.mode, "commit", entry.oid.hex(), "-", path
        else:
            yield entry.mode, "blob", entry.oid.hex(), store.read_size(entry.oid), path


def main(repo, rev="HEAD"):
    store = odb.open(repo)  # a bare repository, a .git directory or a work tree, as git finds it
    refs = odb.RefStore(store.git_dir, store.common_dir, store.format)
    tree = odb.revision.resolve(store, refs, rev).tree  # tags and commits peel to their tree
    for mode, kind, oid, size, path in walk(store, tree):
        print(f"{mode:06o} {kind} {oid} {size:>7}\t{path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
