"""Plain numbers the server keeps for the exporter's scrape-time reads (no Prometheus here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ServerCounters:
    """Counters the exporter reads at scrape time."""

    proposals_failed: int = 0
    heartbeat_send_failures: int = 0
    slow_applies: int = 0
    slow_read_indexes: int = 0
    read_indexes_failed: int = 0
    leader_changes_seen: int = 0
    apply_seconds_total: float = 0.0
    snapshots_taken: int = 0
    snapshots_installed: int = 0
    # Entries answered before their apply whose apply gave another result (a bug; see
    # Applier.answer_ahead). Logged as an error; tests assert it stays 0.
    answers_ahead_wrong: int = 0


@dataclass(slots=True)
class Faults:
    """Lab faults active on this member (visible in /metrics under raftmon_)."""

    ticks_paused: bool = False
