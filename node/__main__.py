import sys

if sys.argv[1:2] == ["snapshot"]:
    # `raftmon snapshot restore|status`: etcdctl's snapshot commands for raftmon files
    from node.member.snapshot_cli import main as snapshot_main

    sys.exit(snapshot_main(sys.argv[2:]))

from node.member import main

sys.exit(main(sys.argv[1:]))
