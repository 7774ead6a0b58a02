"""`python -m node.member FLAGS`: run one member (what `raftmon node FLAGS` runs)."""

import sys

from node.member import main

sys.exit(main(sys.argv[1:]))
