"""Network: can the members reach each other quickly enough to keep a leader?

Every write waits for a quorum round trip, and elections start when heartbeats are late:
peer round-trip time, traffic and send failures per member pair.
"""

from dashboards.panels import (
    FAULTS,
    Q,
    board,
    latency_panel,
    per_member,
    threshold_line,
    timeseries,
)
from dashboards.queries import member

M = member()

rtt = latency_panel(
    "Is peer round-trip p99 under 102 ms?",
    "p99 round-trip time of the probes each member sends each peer, per pair (member -> peer "
    "id). The line is the etcdMemberCommunicationSlow threshold; the default 1 s election "
    "timeout should be at least 10 x this RTT.",
    "etcd_network_peer_round_trip_time_seconds",
    M,
    by="instance, To",
    quantiles=(0.99,),
    lines=threshold_line("memberCommunicationSlow.p99Seconds"),
    legend="{{instance}} -> {{To}}",
)

traffic = timeseries(
    "How much traffic flows between peers?",
    "Bytes per second each member sends to (positive) and receives from each peer. The leader "
    "sends the most: it replicates every entry to every follower.",
    "Bps",
    [
        per_member("etcd_network_peer_sent_bytes_total", "-> {{To}} sent"),
        per_member("etcd_network_peer_received_bytes_total", "<- {{From}} received"),
    ],
)

failures = timeseries(
    "Are sends to peers failing?",
    "Failed sends to and receives from each peer per second. The line is the per-peer rate "
    "at which etcdMembersDown counts a peer as down. etcd 3.4 creates these series at the "
    "first failure, so a healthy etcd shows no data here.",
    "cps",
    [
        per_member("etcd_network_peer_sent_failures_total", "-> {{To}} send failures"),
        per_member("etcd_network_peer_received_failures_total", "<- {{From}} receive failures"),
    ],
    lines=threshold_line("membersDown.peerFailuresPerSecond"),
)

active = timeseries(
    "Is every member connected to every peer?",
    "Active peer connections per member: a member of an N-member cluster should hold N - 1. "
    "Fewer means a partition or a peer that is down.",
    "short",
    [Q(f"sum by (instance) (etcd_network_active_peers{M})", "{{instance}}")],
)

disconnects = timeseries(
    "How often do peer connections drop?",
    "Peer disconnections per second, per member and remote peer. Steady drops with a healthy "
    "peer point at the network between them.",
    "cps",
    [per_member("etcd_network_disconnected_peers_total", "-> {{Remote}}")],
)

client_traffic = timeseries(
    "How much client traffic does each member carry?",
    "Bytes per second received from and sent to clients (request and response bodies) per "
    "member, to tell peer traffic caused by client load from replication overhead.",
    "Bps",
    [
        per_member("etcd_network_client_grpc_received_bytes_total", "received"),
        per_member("etcd_network_client_grpc_sent_bytes_total", "sent"),
    ],
)

dashboard = board(
    "network",
    __doc__,
    faults=("peer_delay", "peer_drop"),
    rows=[
        (9, [rtt, traffic]),
        (6, [FAULTS]),
        (8, [failures, active]),
        (8, [disconnects, client_traffic]),
    ],
)
