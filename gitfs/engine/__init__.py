"""How objects are made for the mount: the worker pool and its helper processes (workers.py,
helper.py, helper_protocol.py, answers.py), the object cache and shared loads (object_cache.py),
reads (object_reads.py), read-ahead with pushes (read_ahead.py), big objects streamed
(streams.py), and the one way a worker wakes the loop (loop.py)."""
