"""The namespaces the root composes (namespace.py says what one implements): the buckets and their
objects (bucket_namespace.py), .refs (refs_namespace.py, refs_view.py), .tree (tree_namespace.py,
tree_view.py, subtrees_ahead.py, lfs_view.py) and .log (log_namespace.py, log_view.py), the last
three over node_namespace.py."""
