"""Where the mount's log lines go: stderr in the foreground, a file, or syslog when detached."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from . import errors


def setup_logging(args, *, detached: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if args.log_file:
        handler = logging.FileHandler(args.log_file)
    elif not detached:
        handler = logging.StreamHandler(sys.stderr)
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler("/dev/log")
    else:
        handler = logging.NullHandler()
    fmt = "%(asctime)s gitfs[%(process)d] %(levelname)s %(message)s"
    if isinstance(handler, logging.handlers.SysLogHandler):
        fmt = "gitfs[%(process)d]: %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)
    errors.trace_requests(args.debug)
    if not args.debug:
        logging.getLogger("pyfuse3").setLevel(logging.WARNING)


