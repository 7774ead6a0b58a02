"""Per-request gateway counters: the gRPC families and client traffic as plain ints.

Every client request touches seven counters (started, message received, client
requests, bytes in; handled, message sent, bytes out). As prometheus_client Counters that
is seven lock round trips, ~3.4 µs per request in `make bench`; as attribute increments on
objects bound once it is a fraction of that. The price is a rule: increments happen on
the member's event-loop thread only (aiohttp handlers do), and the collector reads them on
the same thread when /metrics renders, so no lock is needed and no update is lost.

grpc_server_handling_seconds (`--metrics=extensive`) follows the same rule: a method's
histogram is a list of bucket counts and a sum on its `Rpc`, one bisect and two additions
per call (prometheus_client's Histogram takes a lock and walks every bucket).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter import catalog as C
from exporter.collectors import new_family

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric

__all__ = ["ClientTraffic", "GatewayCollector", "Rpc"]

_BOUNDS = C.GRPC_HANDLING.buckets
# `le` label values, +Inf last, rendered as the other histograms' (prometheus_client's).
_LE = (*map(floatToGoString, _BOUNDS), "+Inf")


@dataclass(slots=True, eq=False)
class Rpc:
    """The gRPC-family counters of one (service, method); bind once, then `+= 1`.

    `handled` holds every code of GRPC_CODES at 0, as etcd pre-initialises them;
    `handled_ok` is the OK count, kept apart because it is the common case. `timed` says
    whether finished calls are observed into grpc_server_handling_seconds (the member
    runs with --metrics=extensive): the one check a front end makes per call.
    """

    service: str
    method: str
    grpc_type: str
    timed: bool = False
    started: int = field(default=0, init=False)
    msg_received: int = field(default=0, init=False)
    msg_sent: int = field(default=0, init=False)
    handled_ok: int = field(default=0, init=False)
    handled: dict[str, int] = field(  # every code but OK
        default_factory=lambda: dict.fromkeys(C.GRPC_CODES[1:], 0), init=False
    )
    # grpc_server_handling_seconds: handling[i] counts calls in (bound[i-1], bound[i]],
    # the last slot those above every bound (+Inf); cumulated when /metrics renders.
    handling: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS) + 1), init=False)
    handling_sum: float = field(default=0.0, init=False)

    def observe_handling(self, seconds: float) -> None:
        """One finished call took `seconds` (le bounds are inclusive, as Prometheus's)."""
        self.handling[bisect_left(_BOUNDS, seconds)] += 1
        self.handling_sum += seconds

    def count_handled(self, code: str) -> None:
        """One call ended with `code`; a code outside GRPC_CODES counts as Unknown."""
        if code == "OK":
            self.handled_ok += 1
        elif code in self.handled:
            self.handled[code] += 1
        else:
            self.handled["Unknown"] += 1


@dataclass(slots=True, eq=False)
class ClientTraffic:
    """Client request counts by (client_api_version, type), and body bytes both ways."""

    received_bytes: int = 0
    sent_bytes: int = 0
    # The gateway's own key exists from the start, so the family is never empty.
    requests: dict[tuple[str, str], int] = field(default_factory=lambda: {("unknown", "unary"): 0})


class GatewayCollector(Collector):
    """Exposes the Rpc table and ClientTraffic under etcd's family names.

    With `handling`, grpc_server_handling_seconds too (every method, as etcd
    pre-initialises them when --metrics=extensive); without, the family is absent.
    """

    def __init__(
        self, rpcs: dict[tuple[str, str], Rpc], traffic: ClientTraffic, handling: bool = False
    ) -> None:
        self._rpcs = rpcs
        self._traffic = traffic
        self._handling = handling

    def collect(self) -> Iterable[Metric]:
        started = new_family(C.GRPC_STARTED)
        handled = new_family(C.GRPC_HANDLED)
        received = new_family(C.GRPC_MSG_RECEIVED)
        sent = new_family(C.GRPC_MSG_SENT)
        timing = new_family(C.GRPC_HANDLING) if self._handling else None
        for rpc in list(self._rpcs.values()):
            labels = {
                "grpc_method": rpc.method,
                "grpc_service": rpc.service,
                "grpc_type": rpc.grpc_type,
            }
            started.add_sample(C.GRPC_STARTED.name, labels, rpc.started)
            received.add_sample(C.GRPC_MSG_RECEIVED.name, labels, rpc.msg_received)
            sent.add_sample(C.GRPC_MSG_SENT.name, labels, rpc.msg_sent)
            handled.add_sample(C.GRPC_HANDLED.name, {"grpc_code": "OK", **labels}, rpc.handled_ok)
            for code, count in rpc.handled.items():
                handled.add_sample(C.GRPC_HANDLED.name, {"grpc_code": code, **labels}, count)
            if timing is not None:
                _add_handling(timing, rpc, labels)
        traffic = self._traffic
        requests = new_family(C.CLIENT_REQUESTS)
        for (version, kind), count in sorted(traffic.requests.items()):
            requests.add_sample(
                C.CLIENT_REQUESTS.name, {"client_api_version": version, "type": kind}, count
            )
        received_bytes = new_family(C.CLIENT_RECEIVED_BYTES)
        received_bytes.add_sample(C.CLIENT_RECEIVED_BYTES.name, {}, traffic.received_bytes)
        sent_bytes = new_family(C.CLIENT_SENT_BYTES)
        sent_bytes.add_sample(C.CLIENT_SENT_BYTES.name, {}, traffic.sent_bytes)
        families = [started, handled, received, sent, requests, received_bytes, sent_bytes]
        return families if timing is None else [*families, timing]


def _add_handling(family: Metric, rpc: Rpc, labels: dict[str, str]) -> None:
    """One method's buckets (cumulative, as exposed), sum and count."""
    name = C.GRPC_HANDLING.name
    cumulative = 0
    for le, count in zip(_LE, rpc.handling, strict=True):
        cumulative += count
        family.add_sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
    family.add_sample(f"{name}_sum", labels, rpc.handling_sum)
    family.add_sample(f"{name}_count", labels, cumulative)
