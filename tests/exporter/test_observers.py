"""MemberMetrics is the one observer the member hands to its WAL, store, transport and server.

The hook Protocols live in node/ (which never imports prometheus_client); this checks
that every hook they declare exists on MemberMetrics and accepts their arguments, so a
signature drift fails here instead of in a running member. mypy checks the same
statically through the conformance lines below.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from exporter import catalog as C
from exporter.metrics import MemberMetrics

if TYPE_CHECKING:
    from exporter.metrics import RequestDuration, Rpc
    from node.api.observer import GatewayObserver
    from node.server.observer import MemberObserver

    _member: MemberObserver = MemberMetrics()
    # The front ends' seam (node/api/observer.py): the gateway and gRPC report through it.
    _gateway: GatewayObserver[Rpc, RequestDuration] = MemberMetrics()

_DUMMY: dict[str, Any] = {"float": 0.01, "int": 3, "bool": True, "str": "unknown_sender"}


def _protocols() -> list[type]:
    from node.mvcc.observer import BackendObserver
    from node.server.observer import ServerObserver
    from node.transport.stats import TransportObserver
    from node.wal.observer import WalObserver

    return [WalObserver, BackendObserver, TransportObserver, ServerObserver]


@pytest.mark.parametrize("protocol", _protocols(), ids=lambda p: p.__name__)
def test_every_hook_of_the_layers_exists_and_accepts_their_arguments(protocol: type) -> None:
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False)
    hooks = [name for name in vars(protocol) if name.startswith("on_")]
    assert hooks
    for name in hooks:
        params = list(inspect.signature(getattr(protocol, name)).parameters.values())[1:]
        args = [_DUMMY[str(p.annotation)] for p in params if p.kind is not p.KEYWORD_ONLY]
        getattr(metrics, name)(*args)  # raises TypeError if the signatures drifted


def test_peer_refusals_are_counted_by_reason_from_zero() -> None:
    from node.transport.stats import REFUSAL_REASONS

    assert REFUSAL_REASONS == C.PEER_REFUSAL_REASONS  # the transport's names are the labels
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False)

    def value(reason: str) -> float | None:
        name = "raftmon_network_peer_refused_total"
        return metrics.registry.get_sample_value(name, {"reason": reason})

    assert [value(r) for r in C.PEER_REFUSAL_REASONS] == [0.0] * len(C.PEER_REFUSAL_REASONS)
    metrics.on_peer_refused("stream_in_use")
    metrics.on_peer_refused("stream_in_use")
    assert value("stream_in_use") == 2
    assert value("unknown_sender") == 0


def test_snapshot_db_hooks_reach_their_families() -> None:
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False)
    metrics.on_snapshot_db_fsync(0.001)
    metrics.on_snapshot_db_save(0.2)
    assert metrics.registry.get_sample_value("etcd_snap_db_fsync_duration_seconds_count") == 1
