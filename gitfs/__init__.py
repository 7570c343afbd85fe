"""gitfs: a git object database mounted as a read-only FUSE filesystem."""

__version__ = "0.1.0"
