"""`python -m gitfs`: the same program as the `gitfs` command."""

import sys

from .cli import main

sys.exit(main())
