"""`python -m gitfs`: the same program as the `gitfs` command."""

import sys

from gitfs.cli.main import main

sys.exit(main())
