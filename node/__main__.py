import sys

# Keep the bytecode of what a member imports (node.member.main says why) from the first
# module on: node.config, the largest, is imported before main() runs.
sys.dont_write_bytecode = False

if sys.argv[1:2] == ["snapshot"]:
    # `raftmon snapshot restore|status`: etcdctl's snapshot commands for raftmon files
    from node.member.snapshot_cli import main as snapshot_main

    sys.exit(snapshot_main(sys.argv[2:]))

# Before the first dataclass is defined: their generated methods come compiled from a
# cache next to the bytecode (node.dataclass_cache says why).
from node.dataclass_cache import install  # noqa: E402

install()

from node.member import main  # noqa: E402 - after the bytecode setting above

sys.exit(main(sys.argv[1:]))
