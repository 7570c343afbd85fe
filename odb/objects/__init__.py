"""Git's objects as they are stored, apart from packs (odb/pack/) and refs (odb/refs/): object
kinds, loose objects, zlib streams inflated piece by piece, deltas and the delta chains that
rebuild packed objects, trees, and the header lines of commits and tags.

Nothing is imported here: each module is imported by its own name (odb.objects.tree, ...), so
that odb/pack/ and these modules can import from one another without a cycle through this file.
"""
