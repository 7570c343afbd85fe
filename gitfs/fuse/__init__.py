"""The FUSE side: the mount's session and signals (daemon.py), the pyfuse3 handlers that turn
requests into view calls (operations.py), the one errno boundary (fuse_errors.py), and what
reaches into the kernel's caches (kernel_cache.py, fuse_notify.py). Nothing else imports pyfuse3."""
