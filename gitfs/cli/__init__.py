"""The command line: `gitfs mount`, `status`, `resolve`, `umount`; what a mount checks before it
starts, where its log goes, and the mount table it reads. The mount itself is gitfs/fuse/daemon.py."""
