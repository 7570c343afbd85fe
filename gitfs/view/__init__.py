"""The mount's view, without FUSE: the thin root that composes the namespaces and what they share
(mount_view.py), inode numbers (inodes.py, object_inodes.py), directory snapshots and their sizes
(listings.py, buckets.py, listing_sizes.py), user.* attributes (xattrs.py), the status attribute
(status.py), and the sweep after a repository change (sweep.py)."""
