"""`python -m lab ...` is `raftmon ...` (the dispatcher in lab/cli.py)."""

import sys

from lab.cli import main

sys.exit(main())
