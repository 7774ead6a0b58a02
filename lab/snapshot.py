"""`raftmon snapshot restore|status FILE`: etcdctl's snapshot commands for raftmon files.

The work is the member's (`python -m node snapshot ...`, node/member/snapshot_cli.py): it
reads the member's database and writes its data dir, and the lab imports no member
code, so this runs it as a child process with the same arguments and its exit code.
"""

from __future__ import annotations

import sys

from lab.children import spawn


def main(argv: list[str]) -> int:
    child = spawn([sys.executable, "-m", "node", "snapshot", *argv])
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        return 130
