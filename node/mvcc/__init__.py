"""The MVCC state machine on SQLite: revisions, ranges, txns, compaction, leases, watches.

Modules, one job each:
    requests   etcd's request/response values (bytes keys), enums
    codec      encode_request / decode_request: requests as Raft entry data (imports requests)
    schema     the SQLite layout and durability settings
    kv         revisioned reads and one-revision write transactions
    txn        compares, txn execution and etcd's pre-propose request checks
    store      KVStore: apply_batch, reads, quota/alarms, defrag, backup/restore, stats
    dedup      the request ids applied lately: a proposal sent twice is applied once
    lease      Lessor (leader-side deadlines, expiry) and lease id generation
    watch      WatchHub / WatchStream: live and historical events, slow-consumer policy
    compactor  auto-compaction policies (revision | periodic)
    hash       HashKV / Hash of the content, as etcd 3.4 defines them, from a read snapshot
    quota      etcd's request cost estimate for the backend quota

Errors are etcd's values from node/errors.py, durable file helpers come from
node/fsutil.py and durations from node/duration.py (the base layer); nothing here
imports asyncio, prometheus_client, the Raft core, the config or another leaf.
"""

from node.mvcc import requests as requests
