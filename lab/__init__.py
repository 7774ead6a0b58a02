"""The lab: `make demo` and `raftmon lab <scenario>`, the course's emergencies rehearsed live.

Every piece here starts real processes (members, Prometheus, Alertmanager, etcd 3.4) on
loopback and stops exactly what it started, also on Ctrl-C:

- `procs`     one managed child process, bounded waits, tiny JSON-over-HTTP helpers
- `webhook`   the local Alertmanager webhook receiver (records every notification)
- `prom`      Prometheus + Alertmanager with our rules and routing (`LabStack`)
- `etcd_cluster` a real etcd 3.4 cluster with the same surface as `LocalCluster`
- `writer`    a light background write load that remembers every acknowledged write
- `timeline`  what happened when: fault, metric moved, pending, firing, routed, resolved
- `panels`    the committed Grafana boards' queries, variables filled for a run
- `report`    readable (rich) and JSON renderings
- `scenarios` the seven scenarios and `raftmon lab`; `demo` is `make demo`
"""
