"""The MVCC state machine on SQLite: revisions, ranges, txns, compaction, leases, watches.

Modules, one job each:
    requests   etcd's request/response values (bytes keys), enums, re-exports the codec
    codec      encode_request / decode_request: requests as Raft entry data
    errors     etcd's errors as exception classes with etcd's exact text
    schema     the SQLite layout and durability settings
    kv         revisioned reads and one-revision write transactions
    txn        compares, txn execution and etcd's pre-propose request checks
    store      KVStore: apply_batch, reads, quota/alarms, defrag, backup/restore, stats
    lease      Lessor (leader-side deadlines, expiry) and lease id generation
    watch      WatchHub / WatchStream: live and historical events, slow-consumer policy
    compactor  auto-compaction policies (revision | periodic)
    quota      etcd's request cost estimate for the backend quota

Nothing here imports asyncio, prometheus_client or the Raft core.
"""

from node.mvcc import requests as requests
