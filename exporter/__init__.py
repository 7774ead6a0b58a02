"""raftmon's metrics: etcd's families, names and buckets, exposed the way etcd exposes them.

- `exporter.catalog`   every family, declared once (MetricSpec), LEFT_OUT, family_names()
- `exporter.state`     MemberStateSource: the Protocol the member implements for scrapes
- `exporter.metrics`   MemberMetrics: builds the families on a registry, hot-path handles,
                       and the observer hooks the WAL, store and transport call
- `exporter.rpc`       gateway/gRPC counters as event-loop ints (cheap per request)
- `exporter.collectors` scrape-time collectors (member state, OS figures, bare counters)
- `exporter.exposition` text format 0.0.4 with etcd's exact names (no `_created`)
- `exporter.http`      the aiohttp /metrics handler

`python -m exporter` prints the catalog as a markdown table (for the README).
The Raft core never imports this package.
"""
