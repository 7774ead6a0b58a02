"""The `raftmon` command: one entry point, one subcommand per job.

Subcommands are resolved lazily so `raftmon load` does not import the member
server and `raftmon node` does not import grafanalib. Each target module exposes
`main(argv: list[str]) -> int`.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "node": ("node.member", "run one Raft KV member (etcd-compatible flags)"),
    "cluster": ("lab.cluster", "run a local N-member cluster on loopback"),
    "load": ("loadgen.cli", "generate load against raftmon or etcd (etcd benchmark flags)"),
    "mixin": ("alerts.render", "render the alerts mixin to alerts/out/"),
    "dashboards": ("dashboards.generate", "generate Grafana dashboards to dashboards/out/"),
    "demo": ("lab.demo", "the main job: a loaded 3-member cluster, watched, with a report"),
    "lab": ("lab.scenarios", "rehearse an etcd emergency end to end"),
    "snapshot": ("lab.snapshot", "restore a snapshot into a new data dir, or print its status"),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: raftmon <command> [flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"raftmon: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
