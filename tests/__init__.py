"""Tests mirror the source tree: tests/raft, tests/wal, tests/mvcc, tests/cluster, ..."""
