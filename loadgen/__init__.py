"""raftmon's load generator: etcd benchmark-class workloads with honest latency.

`loadgen.cli.main(argv)` is `raftmon load`; `loadgen.client.EtcdClient` is the small
async client of etcd's v3 HTTP/JSON gateway that the cluster tests and the lab reuse.
A run speaks that gateway or etcd's native gRPC API (`--protocol`), through one
`loadgen.conn.Conn` per connection.
"""
