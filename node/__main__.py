import sys

from node.member import main

sys.exit(main(sys.argv[1:]))
