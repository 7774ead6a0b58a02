"""The lab: `raftmon cluster`, `make demo` and `raftmon lab <scenario>`, and the harness tests use.

Nothing here imports the member (`node`): members are processes (`python -m node`), and
`raftmon node` reaches them through the dispatcher in `cli`. Every piece starts real
processes (members, Prometheus, Alertmanager, etcd 3.4) on loopback and stops exactly
what it started, also on Ctrl-C and SIGTERM; if the lab dies first, the kernel ends them.

The process harness (the tests start everything through it too):
- `children`  `spawn()`: every child dies with its parent; SIGTERM unwinds like Ctrl-C
- `procs`     one managed child process, free ports, bounded waits, JSON-over-HTTP helpers
- `members`   what raftmon and etcd clusters share: etcd flags, status, leader, kill -9
- `cluster`   `LocalCluster` (N raftmon members) and `raftmon cluster`
- `etcd_cluster` a real etcd 3.4 cluster with the same surface as `LocalCluster`
- `prom`      Prometheus + Alertmanager with our rules and routing (`LabStack`)
- `webhook`   the local Alertmanager webhook receiver (records every notification)
- `certs`     a CA and member/client certificates for `--tls`

The runs:
- `writer`    a light background write load that remembers every acknowledged write
- `timeline`  what happened when: fault, metric moved, pending, firing, routed, resolved
- `panels`    the committed Grafana boards' queries, variables filled for a run
- `report`    readable (rich) and JSON renderings
- `runtime`   one run's cluster, load, faults and checks
- `scenarios` the seven scenarios and `raftmon lab`; `demo` is `make demo`
- `flags`     the flags `raftmon demo` and `raftmon lab` share
- `cli`       the `raftmon` command: one subcommand per job, resolved lazily
"""
