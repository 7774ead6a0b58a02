"""etcd 3.4's peer RTT metric: a smoothed round trip, observed on a monitor's cadence.

etcd_network_peer_round_trip_time_seconds is not a histogram of probes in etcd 3.4. Its
prober (xiang90/probing, started by rafthttp/probing_status.go) probes each peer every
4 s (ConnReadTimeout - 1 s) and folds each answer into a smoothed RTT,
srtt = 7/8 srtt + 1/8 rtt, starting from 0; a failed probe only marks the peer unhealthy.
A monitor loop per peer observes that SRTT into the histogram: first 5 s after the peer
is added, then every 30 s while the peer is healthy and every 5 s while it is not (3.4
observes in both cases). A dashboard or an alert reading the histogram therefore sees a
smoothed value a few times a minute, never one probe's scheduling spike.

raftmon probes every second (the stuck-stream detector in peer.py needs that), so the
SRTT takes one probe in `sample_every`: the probes etcd would have sent. The monitor's
healthy interval is a raftmon-only flag (--experimental-peer-rtt-monitor-interval) so the
compressed-time lab can see a change within seconds; the unhealthy and first intervals
and the SRTT's sampling never exceed it.

Pure: no clock, no I/O. The peer link feeds outcomes in and runs `run_monitor` with the
loop's sleep; tests drive both with their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ALPHA = 0.125  # xiang90/probing's weight of a new sample
ETCD_PROBE_INTERVAL = 4.0  # rafthttp proberInterval: ConnReadTimeout (5 s) - 1 s
ETCD_HEALTHY_INTERVAL = 30.0  # statusMonitoringInterval
ETCD_UNHEALTHY_INTERVAL = 5.0  # statusErrorInterval, also the first check


@dataclass(frozen=True, slots=True)
class MonitorTiming:
    """The monitor's intervals (seconds), derived from its healthy interval."""

    healthy: float = ETCD_HEALTHY_INTERVAL

    @property
    def unhealthy(self) -> float:
        """Between checks while the peer is unhealthy, and before the first check."""
        return min(ETCD_UNHEALTHY_INTERVAL, self.healthy)

    def sample_every(self, probe_interval: float) -> int:
        """How many of our probes make one of etcd's (at least 1)."""
        spacing = min(ETCD_PROBE_INTERVAL, self.healthy)
        return max(1, round(spacing / probe_interval))


class SmoothedRtt:
    """xiang90/probing's status of one peer: SRTT and health, fed one probe in `every`."""

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.every = every
        self.srtt = 0.0  # seconds; 0 until the first sampled answer, as etcd's
        self.healthy = False  # etcd's status starts unhealthy until a probe answers
        self._seen = 0

    def record(self, ok: bool, rtt: float = 0.0) -> bool:
        """One probe's outcome; True if it was sampled (the 1st, then every `every`-th)."""
        sampled = self._seen % self.every == 0
        self._seen += 1
        if not sampled:
            return False
        if ok:
            self.srtt = (1.0 - ALPHA) * self.srtt + ALPHA * rtt
            self.healthy = True
        else:
            self.healthy = False
        return True

    def check(self, timing: MonitorTiming) -> tuple[float, float]:
        """One monitor check: the value to observe and the wait before the next check."""
        wait = timing.healthy if self.healthy else timing.unhealthy
        return self.srtt, wait


async def run_monitor(
    status: SmoothedRtt,
    timing: MonitorTiming,
    observe: Callable[[float], None],
    sleep: Callable[[float], Awaitable[object]],
) -> None:
    """etcd's monitorProbingStatus: wait, observe the SRTT, choose the next wait; forever
    (the caller cancels it with the peer's link)."""
    wait = timing.unhealthy
    while True:
        await sleep(wait)
        value, wait = status.check(timing)
        observe(value)
