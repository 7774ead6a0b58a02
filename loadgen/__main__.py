"""`python -m loadgen ...` is `raftmon load ...`."""

import sys

from loadgen.cli import main

sys.exit(main(sys.argv[1:]))
