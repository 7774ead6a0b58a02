"""`python -m node snapshot restore|status` (= `raftmon snapshot ...`): etcdctl 3.4's commands.

Flags, exit codes, error lines (`Error: ...`) and the status output formats (`-w simple|
table|json|fields`) are etcdctl's, so scripts written for etcd's snapshots carry over;
the work on the files is node.member.restore's.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from node.logfmt import configure
from node.member.restore import RestoreError, restore, snapshot_status

if TYPE_CHECKING:
    from node.mvcc.dbfile import DBStatus

EXIT_ERROR = 1  # etcdctl's ExitError
EXIT_BAD_ARGS = 128  # etcdctl's ExitBadArgs


# ---- status -----------------------------------------------------------------------------
def _humanize_bytes(n: int) -> str:
    """go-humanize's Bytes: SI units, one decimal under 10 ("2.1 MB", "82 kB", "7 B")."""
    if n < 10:
        return f"{n} B"
    sizes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    e = math.floor(math.log(n) / math.log(1000))
    val = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[e]}" if val < 10 else f"{val:.0f} {sizes[e]}"


def _table(header: list[str], row: list[str]) -> str:
    """etcdctl's table (olekukonko/tablewriter): centred upper-case header, cells right."""
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        gap = width - len(text)
        return " " * (gap // 2) + text + " " * (gap - gap // 2)

    head = (
        "|"
        + "|".join(f" {centred(h.upper(), w)} " for h, w in zip(header, widths, strict=True))
        + "|"
    )
    body = "|" + "|".join(f" {c:>{w}} " for c, w in zip(row, widths, strict=True)) + "|"
    return "\n".join([rule, head, rule, body, rule])


def format_status(st: DBStatus, write_out: str) -> str:
    """`etcdctl snapshot status -w <write_out>`'s text."""
    row = [f"{st.hash:x}", str(st.revision), str(st.total_key), _humanize_bytes(st.total_size)]
    if write_out == "table":
        return _table(["hash", "revision", "total keys", "total size"], row)
    if write_out == "json":
        return json.dumps(
            {
                "hash": st.hash,
                "revision": st.revision,
                "totalKey": st.total_key,
                "totalSize": st.total_size,
            },
            separators=(",", ":"),
        )
    if write_out == "fields":
        return "\n".join(
            [
                f'"Hash" : {st.hash}',
                f'"Revision" : {st.revision}',
                f'"Keys" : {st.total_key}',
                f'"Size" : {st.total_size}',
            ]
        )
    return ", ".join(row)


# ---- command line -------------------------------------------------------------------------
def _go_bool_flags(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """pflag's `--flag=true|false` for boolean flags, which argparse's store_true refuses."""
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if sep and flag in names:
            if value.lower() in ("1", "t", "true"):
                out.append(flag)
                continue
            if value.lower() in ("0", "f", "false"):
                continue
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftmon snapshot",
        description="Restore a raftmon snapshot into a new data dir, or print its status "
        "(etcdctl snapshot's flags; etcdctl itself reads only etcd's bbolt files).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rs = sub.add_parser("restore", help="Restores a raftmon member snapshot to a data directory")
    rs.add_argument("filename", nargs="*")
    rs.add_argument("--name", default="default", help="Human-readable name for this member")
    rs.add_argument("--data-dir", default="", help="Path to the data directory")
    rs.add_argument(
        "--initial-cluster",
        default="default=http://localhost:2380",
        help="Initial cluster configuration for restore bootstrap",
    )
    rs.add_argument(
        "--initial-cluster-token",
        default="etcd-cluster",
        help="Initial cluster token for the etcd cluster during restore bootstrap",
    )
    rs.add_argument(
        "--initial-advertise-peer-urls",
        default="http://localhost:2380",
        help="List of this member's peer URLs to advertise to the rest of the cluster",
    )
    rs.add_argument(
        "--skip-hash-check",
        action="store_true",
        help="Ignore snapshot integrity hash value (required if copied from data directory)",
    )
    st = sub.add_parser("status", help="Gets backend snapshot status of a given file")
    st.add_argument("filename", nargs="*")
    st.add_argument(
        "-w",
        "--write-out",
        default="simple",
        choices=("simple", "table", "json", "fields"),
        help="set the output format",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(_go_bool_flags(argv, ("--skip-hash-check",)))
    if len(args.filename) != 1:
        sys.stderr.write(f"Error: snapshot {args.command} requires exactly one argument\n")
        return EXIT_BAD_ARGS
    snapshot = args.filename[0]
    try:
        if args.command == "status":
            sys.stdout.write(format_status(snapshot_status(snapshot), args.write_out) + "\n")
            return 0
        configure("info")
        restore(
            snapshot,
            name=args.name,
            data_dir=args.data_dir or f"{args.name}.etcd",
            initial_cluster=args.initial_cluster,
            initial_cluster_token=args.initial_cluster_token,
            initial_advertise_peer_urls=args.initial_advertise_peer_urls,
            skip_hash_check=args.skip_hash_check,
        )
    except (RestoreError, OSError) as err:
        sys.stderr.write(f"Error: {err}\n")
        return EXIT_ERROR
    return 0
