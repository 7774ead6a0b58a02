"""One member's server, one job per module, as etcd's server/etcdserver.

- `bootstrap`: open snapshot, backend and WAL; build the Raft node (etcd's bootstrap.go)
- `inbox`, `raft_loop`: what the loop is handed, and the Ready loop alone (etcd's raft.go)
- `proposals`: client writes into the loop and back, with etcd's limits and timeouts
- `apply`: committed entries into the store, results to the waiting clients
- `read_index`: linearizable reads, batched (etcd's v3_server.go read loop)
- `snapshots`: make, send, receive and install snapshots
- `housekeeping`: the leader's lease expiry and auto-compaction proposals
- `corruption`: etcd's corruption checks over HashKV (initial, and the leader's periodic one)
- `kv_service`, `watch_bridge`: etcd's client API for the front ends in node/api
- `lock`, `election` (on `concurrency`): etcd's v3lock and v3election services, built
  on the KV service as etcd builds them on its in-process client
- `observer`: the server's events, and the one observer a member passes to every layer
- `context`, `counters`: what the jobs share, and the plain counters the exporter reads
- `server`: `EtcdServer`, which ties the jobs together for node/member
"""

from node.server.kv_service import KVService
from node.server.observer import MemberObserver, NullMemberObserver, ServerObserver
from node.server.proposals import GRPC_OVERHEAD_BYTES
from node.server.server import EtcdServer
from node.server.watch_bridge import WatchBridge

__all__ = [
    "GRPC_OVERHEAD_BYTES",
    "EtcdServer",
    "KVService",
    "MemberObserver",
    "NullMemberObserver",
    "ServerObserver",
    "WatchBridge",
]
