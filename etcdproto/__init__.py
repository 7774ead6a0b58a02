"""etcd 3.4's native API (gRPC): the wire declarations and their Python stubs.

proto/     the project's own .proto files: etcd 3.4's packages, services, messages and
           field numbers (wire compatibility is the point; the text is ours)
gen/       stubs generated from proto/ by `python -m etcdproto.generate`, committed;
           tests/api/grpc/test_stubs.py fails when they are stale
generate   the one way to (re)produce gen/
"""
