"""`raftmon lab <scenario>`: the course's emergencies, rehearsed on a live, watched cluster.

Each scenario starts a real cluster, Prometheus and Alertmanager with the compressed-time
rules (alerts/out/lab: windows and `for` in seconds, production thresholds), runs load,
injects its fault and prints a timeline: fault injected, metric moved, alert pending,
firing, routed to which receiver, resolved. Runs marked *control* inject a fault that
must stay under the threshold and assert silence.

    raftmon lab list
    raftmon lab slow-disk            # the fault and its 20 ms control, side by side
    raftmon lab member-down --etcd   # the same scenario on a real etcd 3.4 cluster
    raftmon lab all                  # every run (raftmon and etcd), a few at a time
    raftmon lab slow-disk --tls      # every cluster on https + mTLS, one CA for the lab

Exit status: 0 when every check of every run passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import itertools
import json
import logging
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab import panels
from lab.certs import Authority, make_authority
from lab.children import interrupt_on_signals
from lab.etcd_cluster import ETCD
from lab.flags import add_data_dir, add_run_flags, configure_logging
from lab.membership import EtcdMembershipCluster
from lab.procs import hostport
from lab.prom import JOB, LabStack, Member, lab_alert_for_seconds
from lab.runtime import (
    LabCluster,
    RunContext,
    RunResult,
    transfer_leadership,
)
from lab.timeline import CANCEL, Cancelled, Event, MetricWatch, Timeline
from lab.writer import CONNECTION_ERRORS

if TYPE_CHECKING:
    from collections.abc import Callable

    from lab.cluster import LocalCluster

    MembershipCluster = LocalCluster | EtcdMembershipCluster

log = logging.getLogger(__name__)

PAGE, TICKET = "page", "ticket"
CLIENT_SIDE_ERRORS = frozenset(CONNECTION_ERRORS)


@dataclass(frozen=True)
class RunSpec:
    """One run of a scenario: its cluster label, what it runs on, and its body."""

    scenario: str
    run: str
    target: str  # raftmon | etcd
    control: bool
    body: Callable[[RunContext], None]
    # Dashboard items with data only during a fault that this run checks while its
    # fault lasts (tests assert each has a passing check, and that together the runs
    # cover every fault-only panel and every annotation).
    dashboards: tuple[panels.Ref, ...] = ()
    # On https with client and peer certificates required (`--tls`; see `with_tls`).
    tls: bool = False


def with_tls(spec: RunSpec) -> RunSpec:
    """The same run on mTLS clusters, under its own cluster label (`<run>-tls`)."""
    return dataclasses.replace(spec, run=f"{spec.run}-tls", tls=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    runs: tuple[RunSpec, ...]

    def selected(self, etcd: bool) -> list[RunSpec]:
        wanted = "etcd" if etcd else "raftmon"
        return [r for r in self.runs if r.target == wanted]


# ---------------------------------------------------------------------------------------
# helpers shared by the scenarios


def _settle(ctx: RunContext, seconds: float) -> None:
    """Let load or a fault run for a measured stretch (a measurement window, not a wait)."""
    ctx.observer.hold(seconds)


# The longest range window of a rule a control expects silent (membersDown's 5 s peer
# failure rate, leader changes read a scrape late), plus a scrape, an evaluation and a poll.
CONTROL_SETTLE_SECONDS = 8.0


def _quiet(ctx: RunContext, alerts: list[str]) -> None:
    """A control run's silence period: until none of `alerts` can still fire.

    Once the settle has passed, a rule not pending stays silent unless something new
    happens; a pending one fires or clears within its lab `for`. So the wait ends when
    none is pending, instead of a fixed stretch as long as the longest `for`.
    """
    fors = lab_alert_for_seconds()
    ctx.observer.quiet(alerts, CONTROL_SETTLE_SECONDS, max(fors[a] for a in alerts))


def _window(
    ctx: RunContext, label: str, writer: Any, start: float, end: float | None = None
) -> Any:
    win = writer.window(start, end)
    ctx.measurements[label] = win.to_json()
    ctx.step(
        f"{label}: {win.rate:.0f} writes/s ok, {win.failed} failed, "
        f"p50 {win.p50 * 1000:.1f} ms, p99 {win.p99 * 1000:.1f} ms"
        + (f", errors {win.errors}" if win.errors else "")
    )
    return win


def _expect_routed(ctx: RunContext, alert: str, receiver: str, timeout: float) -> bool:
    seen = ctx.observer.wait(
        f"{alert} routed to {receiver}",
        lambda: ctx.observer.routed(alert, receiver),
        timeout,
    )
    ctx.check(f"{alert} fired", ctx.observer.fired(alert))
    got = sorted(ctx.observer.receivers(alert))
    ctx.check(f"{alert} reached the {receiver} receiver", seen, f"receivers seen: {got or 'none'}")
    if seen:  # the alert fires now: the overview's alert table must list it
        _dashboard_shows(ctx, FIRING_ALERTS, alert, _firing(alert), timeout=5)
    return seen


def _expect_resolved(ctx: RunContext, alert: str, receiver: str, timeout: float) -> bool:
    ok = ctx.observer.wait(
        f"{alert} resolved at {receiver}",
        lambda: ctx.observer.routed(alert, receiver, status="resolved"),
        timeout,
    )
    return ctx.check(f"{alert} resolved and {receiver} was told", ok)


def _expect_silent(ctx: RunContext, alerts: list[str]) -> None:
    for alert in alerts:
        ctx.check(f"{alert} stayed silent (never fired)", not ctx.observer.fired(alert))
        ctx.check(
            f"{alert} reached no receiver",
            not ctx.observer.routed(alert),
            f"receivers: {sorted(ctx.observer.receivers(alert)) or 'none'}",
        )


# Dashboard items that only have data while something is wrong (the live dashboard test
# lists them as fault-only); the runs below check each while its fault lasts.
ALARMS = panels.panel("raftmon-overview", "Which alarms are raised, and on which member?")
FIRING_ALERTS = panels.panel("raftmon-overview", "Which alerts are firing?")
CLIENT_FAILURES = panels.panel("raftmon-loadtest", "Which client requests fail, and why?")
LEADER_CHANGES = panels.annotation("Leader changes")
FSYNC_DELAY = panels.annotation("Fault: WAL fsync delay injected")
TICKS_PAUSED = panels.annotation("Fault: Raft ticks paused")
PEER_DELAY = panels.annotation("Fault: Peer delay injected")
PEER_DROP = panels.annotation("Fault: Peer messages dropped")

Series = list[dict[str, str]]


def _describe(series: Series) -> str:
    """`m1 NOSPACE, m2 NOSPACE`: the labels that tell a table's rows apart."""
    skip = {"__name__", "job", "cluster"}
    rows = [" ".join(v for k, v in sorted(s.items()) if k not in skip) or "{}" for s in series]
    more = f" (+{len(rows) - 6} more)" if len(rows) > 6 else ""
    return ", ".join(sorted(rows)[:6]) + more


def _dashboard_shows(
    ctx: RunContext,
    ref: panels.Ref,
    what: str,
    want: Callable[[Series], bool] = bool,
    timeout: float = 10.0,
) -> bool:
    """Check that a dashboard item returns series for this run that satisfy `want`.

    Every expression of the item (a panel's targets; an annotation on each board that has
    it) is run against the lab Prometheus as Grafana would run it for this cluster, until
    `want` holds for each or `timeout` passes (the scrape and rule lag is a second or two).
    """
    prom = ctx.stack.prometheus
    exprs = sorted({panels.substitute(q.expr, cluster=ctx.run) for q in ref.queries()})
    seen: dict[str, Series] = {}
    errors: dict[str, str] = {}

    def look() -> bool:
        if prom is None:
            return False
        for expr in exprs:
            try:
                seen[expr] = [row["metric"] for row in prom.query(expr)]
                errors.pop(expr, None)
            except (OSError, ValueError) as err:
                errors[expr] = str(err)
                seen[expr] = []
        return all(want(seen[e]) for e in exprs)

    ok = ctx.observer.wait(f"dashboard {ref} shows {what}", look, timeout)
    detail = "; ".join(
        (_describe(seen.get(e, [])) or "no series") + (f" [{errors[e]}]" if e in errors else "")
        for e in exprs
    )
    if not ok:
        detail += " | " + " ; ".join(exprs)
    return ctx.check(f"dashboard: {ref} shows {what}", ok, detail, panels=ref.keys())


def _on_members(names: list[str]) -> Callable[[Series], bool]:
    """`want` for an annotation: a series for each of these members."""
    return lambda series: set(names) <= {s.get("instance", "") for s in series}


def _has(label: str, value: str) -> Callable[[Series], bool]:
    """`want` for a table: some row with `label` = `value`."""
    return lambda series: any(s.get(label) == value for s in series)


def _firing(alert: str) -> Callable[[Series], bool]:
    return _has("alertname", alert)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _read_prefix(
    ctx: RunContext, endpoint: str, prefix: str, timeout: float = 10.0
) -> dict[str, str]:
    """Every key under `prefix` with its value (one linearizable range)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = ctx.http_json(
        endpoint + "/v3/kv/range",
        {"key": _b64(prefix), "range_end": _b64(end)},
        timeout=timeout,
    )
    if not isinstance(answer, dict) or "error" in answer:
        raise RuntimeError(f"range {prefix!r} failed: {answer}")
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
        for kv in answer.get("kvs", [])
    }


def _alive_endpoint(cluster: LabCluster) -> str:
    lead = cluster.wait_leader(30)
    return str(next(m.client_url for m in cluster.members if m.name == lead))


def _followers(cluster: LabCluster) -> list[str]:
    lead = cluster.wait_leader(20)
    return [m.name for m in cluster.members if m.name != lead]


UP_DOWN = 'sum(up{{job="' + JOB + '", cluster="{c}"}} == bool 0)'  # members, not clients
HAS_LEADER = 'min(etcd_server_has_leader{{cluster="{c}"}})'


def _watch_down(ctx: RunContext) -> None:
    ctx.observer.watch(MetricWatch("members down (up == 0)", UP_DOWN.format(c=ctx.run), 0))
    ctx.observer.watch(
        MetricWatch(
            "members with a leader (min has_leader)", HAS_LEADER.format(c=ctx.run), 1, above=False
        )
    )


FSYNC_MEAN = (
    'max by (instance) (instance:etcd_disk_wal_fsync_duration_seconds:mean{{cluster="{c}"}})'
)


# ---------------------------------------------------------------------------------------
# 1. slow-disk


def _slow_disk(delay: float, control: bool) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = ctx.start_raftmon(3)
        ctx.observer.watch(
            MetricWatch("WAL fsync mean", FSYNC_MEAN.format(c=ctx.run), 0.025, unit="ms")
        )
        writer = ctx.writer(cluster.endpoints, clients=4, rate=60)
        t = time.time()
        _settle(ctx, 4)
        _window(ctx, "before", writer, t)
        for m in cluster.members:
            ctx.set_faults(cluster, m.name, {"wal_fsync_delay_seconds": delay})
        ctx.fault(f"WAL fsync +{delay * 1000:.0f} ms on every member")
        t_fault = time.time()
        if control:
            # Long enough for the 10 s mean to settle and a 10 s `for` to pass, with margin.
            _settle(ctx, 26)
            _window(ctx, "during", writer, t_fault + 3)
            peak = _peak(ctx, FSYNC_MEAN.format(c=ctx.run))
            ctx.measurements["fsync_mean_peak_seconds"] = peak
            ctx.check(
                "the fault took effect (fsync mean rose above 15 ms)",
                peak is not None and peak > 0.015,
                f"peak mean {peak * 1000:.1f} ms" if peak is not None else "no data",
            )
            _expect_silent(ctx, ["etcdWALFsyncSlow"])
            return
        names = [m.name for m in cluster.members]
        _dashboard_shows(ctx, FSYNC_DELAY, "every member", _on_members(names))
        _expect_routed(ctx, "etcdWALFsyncSlow", TICKET, timeout=60)
        ctx.check(
            "etcdWALFsyncSlow paged nobody", not ctx.observer.routed("etcdWALFsyncSlow", PAGE)
        )
        _window(ctx, "during", writer, t_fault + 3)
        ctx.clear_faults(cluster)
        ctx.fault("fsync delay removed")
        _expect_resolved(ctx, "etcdWALFsyncSlow", TICKET, timeout=45)

    return body


def _mean_rtt(ctx: RunContext) -> float | None:
    """Largest per-peer mean probe RTT over the last 8 s (seconds)."""
    prom = ctx.stack.prometheus
    if prom is None:
        return None
    sel = f'{{cluster="{ctx.run}"}}'
    rows = prom.query(
        f"max(rate(etcd_network_peer_round_trip_time_seconds_sum{sel}[8s])"
        f" / rate(etcd_network_peer_round_trip_time_seconds_count{sel}[8s]) > 0)"
    )
    return float(rows[0]["value"][1]) if rows else None


def _peak(ctx: RunContext, expr: str) -> float | None:
    prom = ctx.stack.prometheus
    if prom is None:
        return None
    rows = prom.query(f"max(max_over_time(({expr})[40s:1s]))")
    return float(rows[0]["value"][1]) if rows else None


# ---------------------------------------------------------------------------------------
# 2. leader-flapping


def _leader_flapping(ctx: RunContext) -> None:
    cluster = ctx.start_raftmon(3)
    ctx.observer.watch(
        MetricWatch(
            "leader changes per minute",
            f'cluster:etcd_server_leader_changes_seen:per_minute{{cluster="{ctx.run}"}}',
            6,
        )
    )
    writer = ctx.writer(cluster.endpoints, clients=2, rate=30)
    _settle(ctx, 3)
    names = [m.name for m in cluster.members]
    moves = 0
    for i in range(5):
        lead = cluster.wait_leader(20)
        target = names[(names.index(lead) + 1) % len(names)]
        new = transfer_leadership(cluster, target, context=ctx.tls)
        moves += 1
        ctx.fault(f"leadership moved {lead} -> {new} (transfer {i + 1} of 5)")
        _settle(ctx, 1.5)
    ctx.measurements["leadership_transfers"] = moves
    _dashboard_shows(ctx, LEADER_CHANGES, "the leadership moves")
    _expect_routed(ctx, "etcdLeaderChangesTooFrequent", PAGE, timeout=40)
    win = writer.window(ctx.timeline.t0)
    ctx.measurements["writes"] = win.to_json()
    ctx.check(
        "writes kept being acknowledged through the transfers",
        win.ok > 0,
        f"{win.ok} ok, {win.failed} failed",
    )
    _stalled_leader(ctx, cluster, writer)


def _stalled_leader(ctx: RunContext, cluster: LocalCluster, writer: Any) -> None:
    """A leader whose Raft clock stops (a stuck loop, a starved process) loses leadership.

    Without ticks it sends no heartbeats, so the followers' election timers run out and
    they elect another (Raft §5.2). Writes stop first: every append from the stalled
    leader would reset those timers, and it still replicates proposals without ticks.
    """
    writer.stop()
    lead = cluster.wait_leader(20)
    ctx.set_faults(cluster, lead, {"ticks_paused": True})
    ctx.fault(f"Raft ticks paused on the leader {lead} (writes stopped)")
    _dashboard_shows(ctx, TICKS_PAUSED, f"the stalled leader {lead}", _on_members([lead]))
    try:
        new: str | None = cluster.wait_leader(15, exclude=lead)
    except TimeoutError:
        new = None
    ctx.check(
        "a leader whose ticks stop loses leadership to a follower",
        new is not None,
        f"{lead} -> {new}" if new else f"{lead} still leads (or no leader) after 15 s",
    )
    ctx.clear_faults(cluster)
    ctx.fault(f"ticks resumed on {lead}")


def _rolling_restart(ctx: RunContext) -> None:
    cluster = ctx.start_raftmon(3)
    writer = ctx.writer(cluster.endpoints, clients=2, rate=30)
    _settle(ctx, 3)
    lead = cluster.wait_leader(20)
    order = [m.name for m in cluster.members if m.name != lead] + [lead]  # followers first
    leaders = [lead]
    for name in order:
        cluster.restart(name, wait=True, timeout=60)
        now = cluster.wait_leader(30)
        if now != leaders[-1]:
            leaders.append(now)
        ctx.fault(f"restarted {name} (graceful), leader now {now}")
    changes = len(leaders) - 1
    ctx.measurements["leader_changes_seen_by_lab"] = changes
    ctx.step(f"rolling restart done: {changes} leader change(s) ({' -> '.join(leaders)})")
    # Every change is now inside the 30 s window, and the count in it only falls from here:
    # the rule either went pending and fires or clears within its 5 s `for`, or stays silent.
    _quiet(ctx, ["etcdLeaderChangesTooFrequent"])
    _expect_silent(ctx, ["etcdLeaderChangesTooFrequent"])
    win = writer.window(ctx.timeline.t0)
    ctx.measurements["writes"] = win.to_json()
    ctx.check("writes kept being acknowledged through the restart", win.ok > 0, f"{win.ok} ok")


# ---------------------------------------------------------------------------------------
# 3. member-down


def _start(ctx: RunContext, target: str) -> LabCluster:
    return ctx.start_etcd(3) if target == "etcd" else ctx.start_raftmon(3)


def _member_down(target: str) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = _start(ctx, target)
        _watch_down(ctx)
        writer = ctx.writer(cluster.endpoints, clients=3, rate=45)
        t = time.time()
        _settle(ctx, 3)
        _window(ctx, "before", writer, t)
        victim = _followers(cluster)[0]
        cluster.kill(victim)
        t_kill = time.time()
        ctx.fault(f"kill -9 {victim} (one of three)")
        _expect_routed(ctx, "etcdMembersDown", TICKET, timeout=45)
        ctx.check(
            "etcdMembersDown paged nobody (quorum is intact)",
            not ctx.observer.routed("etcdMembersDown", PAGE),
        )
        win = _window(ctx, "while one member is down", writer, t_kill + 3)
        ctx.check(
            "writes keep succeeding with one member of three down",
            win.ok > 0 and win.failed <= max(3, win.ok // 20),
            f"{win.ok} ok, {win.failed} failed",
        )
        cluster.restart(victim, wait=True, timeout=60)
        ctx.fault(f"{victim} restarted")
        _expect_resolved(ctx, "etcdMembersDown", TICKET, timeout=45)

    return body


# ---------------------------------------------------------------------------------------
# 4. quorum-loss


def _quorum_loss(target: str) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = _start(ctx, target)
        _watch_down(ctx)
        # A long client timeout, so the surviving member's own answer (etcd: "request timed
        # out" after ~7 s, raftmon: "no leader") is recorded rather than a client timeout.
        writer = ctx.writer(cluster.endpoints, clients=3, rate=45, timeout=9.0)
        t = time.time()
        _settle(ctx, 3)
        _window(ctx, "before", writer, t)
        victims = _followers(cluster)
        for name in victims:
            cluster.kill(name)
        t_kill = time.time()
        ctx.fault(f"kill -9 {' and '.join(victims)} (two of three: quorum lost)")
        _expect_routed(ctx, "etcdInsufficientMembers", PAGE, timeout=45)
        _expect_routed(ctx, "etcdNoLeader", PAGE, timeout=30)
        # etcd answers a proposal it cannot commit only after its request timeout (~7 s):
        # wait until some write sent without quorum has its answer.
        ctx.observer.wait(
            "a write sent without quorum is answered",
            lambda: writer.window(t_kill + 2).failed + writer.window(t_kill + 2).ok > 0,
            20,
        )
        t_restart = time.time()
        win = _window(ctx, "without quorum", writer, t_kill + 2, t_restart)
        ctx.check(
            "no write is acknowledged without quorum",
            win.ok == 0 and win.failed > 0,
            f"{win.ok} ok, {win.failed} failed",
        )
        errors = ", ".join(f"{k!r} x{v}" for k, v in win.errors.items())
        # raftmon answers "etcdserver: no leader"; etcd 3.4's JSON gateway gives up on its
        # own deadline ("context deadline exceeded"). Either is the cluster's answer, unlike
        # a refused connection or the lab client's own timeout.
        ctx.check(
            "failed writes carry the cluster's own error",
            any(k not in CLIENT_SIDE_ERRORS for k in win.errors),
            errors or "no errors recorded",
        )
        for name in victims:
            cluster.restart(name, wait=True, timeout=60)
        ctx.fault(f"{' and '.join(victims)} restarted")
        cluster.wait_leader(30)
        writer.stop()
        acked = writer.acknowledged()
        stored = _read_prefix(ctx, _alive_endpoint(cluster), writer.prefix + "/")
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        ctx.measurements["acknowledged_writes"] = len(acked)
        ctx.measurements["missing_after_restart"] = len(missing)
        ctx.check(
            "every acknowledged write is there after the restart",
            bool(acked) and not missing,
            f"{len(acked)} acknowledged, {len(missing)} missing"
            + (f", e.g. {missing[:3]}" if missing else ""),
        )
        _expect_resolved(ctx, "etcdInsufficientMembers", PAGE, timeout=45)

    return body


# ---------------------------------------------------------------------------------------
# 5. partitions


def _partition(ctx: RunContext, cluster: LocalCluster, sides: list[list[str]]) -> None:
    """Drop every Raft message (and probe) between members on different sides."""
    for side in sides:
        others = [n for s in sides if s is not side for n in s]
        for name in side:
            ctx.set_faults(cluster, name, {"peers": {o: {"drop": True} for o in others}})
    ctx.fault("partition " + " | ".join(",".join(s) for s in sides))


def _partitions(size: int) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = ctx.start_raftmon(size)
        ctx.observer.watch(
            MetricWatch(
                "members with a leader (min has_leader)",
                HAS_LEADER.format(c=ctx.run),
                1,
                above=False,
            )
        )
        lead = cluster.wait_leader(20)
        names = [m.name for m in cluster.members]
        if size == 3:  # the leader alone on one side: the course's quiz
            sides = [[lead], [n for n in names if n != lead]]
        else:
            sides = [names[:2], names[2:]]
        url = {m.name: m.client_url for m in cluster.members}
        writers = [
            ctx.writer([url[n] for n in side], clients=2, rate=30, timeout=2.0) for side in sides
        ]
        t = time.time()
        _settle(ctx, 3)
        for side, w in zip(sides, writers, strict=True):
            _window(ctx, f"before, side {','.join(side)}", w, t)
        _partition(ctx, cluster, sides)
        t_cut = time.time()
        _dashboard_shows(ctx, PEER_DROP, "every member's cut links", _on_members(names))
        _expect_routed(ctx, "etcdNoLeader", PAGE, timeout=40)
        _settle(ctx, 3)
        t_heal = time.time()
        wins = [
            _window(ctx, f"partitioned, side {','.join(side)}", w, t_cut + 3, t_heal)
            for side, w in zip(sides, writers, strict=True)
        ]
        ctx.measurements["partitioned"] = [
            {"members": side, **w.to_json()} for side, w in zip(sides, wins, strict=True)
        ]
        no_leader = ctx.observer.firing_instances("etcdNoLeader")
        ctx.measurements["no_leader_members"] = sorted(no_leader)
        if size == 3:
            minority, majority = wins
            ctx.check(
                "the majority side (2 of 3) keeps writing",
                majority.ok > 0,
                f"{majority.ok} ok, {majority.failed} failed",
            )
            ctx.check(
                "the minority side (1 of 3) writes nothing",
                minority.ok == 0,
                f"{minority.ok} ok, {minority.failed} failed",
            )
            ctx.check(
                "etcdNoLeader fired only for the isolated member",
                no_leader == set(sides[0]),
                f"fired for {sorted(no_leader)}",
            )
        else:
            ctx.check(
                "neither half of a 2|2 split writes anything",
                all(w.ok == 0 for w in wins),
                ", ".join(f"{w.ok} ok/{w.failed} failed" for w in wins),
            )
            ctx.check(
                "etcdNoLeader fired for every member of the 4",
                no_leader == set(names),
                f"fired for {sorted(no_leader)}",
            )
        ctx.clear_faults(cluster)
        ctx.fault("partition healed")
        healed = ctx.observer.wait(
            "writes resume on every side",
            lambda: all((w.last_ok() or 0) > t_heal for w in writers),
            30,
        )
        ctx.check("writes resume on every side after healing", healed)
        _expect_resolved(ctx, "etcdNoLeader", PAGE, timeout=40)

    return body


# ---------------------------------------------------------------------------------------
# 6. slow-network


PEER_RTT = (
    "max by (instance) "
    '(instance_peer:etcd_network_peer_round_trip_time_seconds:p99{{cluster="{c}"}})'
)


def _slow_network(delay: float) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        # etcd observes a healthy peer's smoothed RTT every 30 s; in compressed time the
        # metric must follow the delay within seconds (raftmon-only flag, rttmonitor.py):
        # probed and observed 4 times a second, the SRTT is within 10% after ~4 s.
        cluster = ctx.start_raftmon(3, extra=["--experimental-peer-rtt-monitor-interval=250ms"])
        ctx.observer.watch(
            MetricWatch("peer RTT p99", PEER_RTT.format(c=ctx.run), 0.1024, unit="ms")
        )
        lead = cluster.wait_leader(20)
        lead_url = cluster.member(lead).client_url
        # One client, writes to the leader, one at a time: latency is the commit path.
        writer = ctx.writer([lead_url], clients=1)
        t = time.time()
        _settle(ctx, 6)
        before = _window(ctx, "before", writer, t)
        names = [m.name for m in cluster.members]
        for name in names:
            ctx.set_faults(
                cluster, name, {"peers": {o: {"delay_seconds": delay} for o in names if o != name}}
            )
        ctx.fault(f"+{delay * 1000:.0f} ms on every peer link, both directions")
        t_fault = time.time()
        _settle(ctx, 8)
        after = _window(ctx, "with the delay", writer, t_fault + 1)
        _dashboard_shows(ctx, PEER_DELAY, "every member's delayed links", _on_members(names))
        rise = after.p50 - before.p50
        ctx.measurements["latency_rise_p50_ms"] = round(rise * 1000, 1)
        ctx.measurements["predicted_rise_ms"] = round(2 * delay * 1000, 1)
        ctx.step(
            f"write p50 rose {rise * 1000:.0f} ms; the course predicts about "
            f"2 x {delay * 1000:.0f} ms "
            f"(leader -> follower append, follower -> leader ack)"
        )
        # A quorum write cannot commit before an append and its ack crossed the delayed
        # links, so the rise has a hard floor near 2 x delay; the ceiling is noise.
        ctx.check(
            "write latency rose by about two one-way delays (one full round trip)",
            rise >= 1.5 * delay,
            f"p50 {before.p50 * 1000:.1f} -> {after.p50 * 1000:.1f} ms",
        )
        _expect_routed(ctx, "etcdMemberCommunicationSlow", TICKET, timeout=40)
        peak = _peak(ctx, PEER_RTT.format(c=ctx.run))
        ctx.measurements["peer_rtt_p99_peak_seconds"] = peak
        mean = _mean_rtt(ctx)
        ctx.measurements["peer_rtt_mean_seconds"] = mean
        # The writes just proved every Raft round trip now takes 2 x delay; the RTT metric
        # (etcd_network_peer_round_trip_time_seconds, what the alert reads) must agree. The
        # mean, not the p99: histogram_quantile lands near the top edge of whichever bucket
        # the probes fall in, so a p99 of ~102 ms cannot tell 51 ms probes from 101 ms ones.
        ctx.check(
            "the peer RTT metric shows the delayed round trip (mean >= 1.8 x delay)",
            mean is not None and mean >= 1.8 * delay,
            (f"peer RTT mean {mean * 1000:.0f} ms" if mean is not None else "no RTT data")
            + (f", p99 estimate {peak * 1000:.0f} ms" if peak is not None else "")
            + f", while writes rose by {rise * 1000:.0f} ms",
        )
        ctx.clear_faults(cluster)
        ctx.fault("delay removed")
        if ctx.observer.routed("etcdMemberCommunicationSlow", TICKET):
            _expect_resolved(ctx, "etcdMemberCommunicationSlow", TICKET, timeout=45)

    return body


# ---------------------------------------------------------------------------------------
# 7. quota

QUOTA_BYTES = 4 * 1024 * 1024
QUOTA_RATIO = (
    'max by (instance) (instance:etcd_mvcc_db_total_size_in_bytes:quota_ratio{{cluster="{c}"}})'
)


def _quota(ctx: RunContext) -> None:
    cluster = ctx.start_raftmon(3, extra=[f"--quota-backend-bytes={QUOTA_BYTES}"])
    ctx.observer.watch(
        MetricWatch("db size / quota", QUOTA_RATIO.format(c=ctx.run), 0.65, unit="%")
    )
    url = _alive_endpoint(cluster)
    # A real load generator beside the fill: its client-side metrics are what the
    # load-test board shows failing once the alarm rejects every put.
    ctx.load_generator(cluster.endpoints, rate=20)
    big = "x" * 64 * 1024
    rejected = ""
    puts = 0
    for i in range(400):  # bounded: 4 MiB of 64 KiB values is ~60 puts
        answer = ctx.http_json(
            url + "/v3/kv/put", {"key": _b64(f"fill/{i % 20:02d}"), "value": _b64(big)}, timeout=10
        )
        if isinstance(answer, dict) and "error" in answer:
            rejected = str(answer.get("message") or answer.get("error"))
            break
        puts += 1
    ctx.fault(f"filled the {QUOTA_BYTES // 1024 // 1024} MiB quota with {puts} puts of 64 KiB")
    ctx.measurements["puts_to_fill"] = puts
    ctx.check(
        "a write over the quota is rejected with NOSPACE",
        "database space exceeded" in rejected,
        rejected or "never rejected",
    )
    _expect_routed(ctx, "etcdNoSpaceAlarm", PAGE, timeout=30)
    _dashboard_shows(ctx, ALARMS, "the NOSPACE alarm", _has("alarm_type", "NOSPACE"))
    _dashboard_shows(
        ctx,
        CLIENT_FAILURES,
        "the load generator's puts failing with no_space",
        _has("outcome", "no_space"),
    )
    ctx.observer.wait(  # the warning tier routes first; the critical one 10 s after 85 %
        "etcdDatabaseQuotaLowSpace routed to the page receiver",
        lambda: PAGE in ctx.observer.receivers("etcdDatabaseQuotaLowSpace"),
        40,
    )
    ctx.check("etcdDatabaseQuotaLowSpace fired", ctx.observer.fired("etcdDatabaseQuotaLowSpace"))
    receivers = sorted(ctx.observer.receivers("etcdDatabaseQuotaLowSpace"))
    ctx.check(
        "etcdDatabaseQuotaLowSpace reached the page receiver "
        "(critical tier; lower tiers inhibited)",
        PAGE in receivers,
        f"receivers: {receivers or 'none'}",
    )
    again = ctx.http_json(url + "/v3/kv/put", {"key": _b64("small"), "value": _b64("v")})
    ctx.check(
        "writes stay rejected while the alarm is raised",
        isinstance(again, dict) and "database space exceeded" in str(again.get("message", "")),
        str(again),
    )
    # Recovery, as the runbook says: compact, defragment every member, disarm.
    status = ctx.http_json(url + "/v3/maintenance/status", {})
    revision = status["header"]["revision"]
    ctx.http_json(url + "/v3/kv/compaction", {"revision": revision, "physical": True}, timeout=30)
    ctx.fault(f"compacted at revision {revision}")
    sizes = {}
    for m in cluster.members:
        ctx.http_json(m.client_url + "/v3/maintenance/defragment", {}, timeout=60)
        st = ctx.http_json(m.client_url + "/v3/maintenance/status", {})
        sizes[m.name] = int(st.get("dbSize", 0))
    ctx.fault(
        "defragmented every member: db "
        + ", ".join(f"{n} {s // 1024} KiB" for n, s in sizes.items())
    )
    alarms = ctx.http_json(url + "/v3/maintenance/alarm", {"action": "GET"}).get("alarms", [])
    for alarm in alarms:
        ctx.http_json(
            url + "/v3/maintenance/alarm",
            {"action": "DEACTIVATE", "memberID": alarm["memberID"], "alarm": alarm["alarm"]},
        )
    ctx.fault(f"disarmed {len(alarms)} alarm(s)")
    ok = ctx.http_json(url + "/v3/kv/put", {"key": _b64("after-recovery"), "value": _b64("v")})
    ctx.check(
        "writes are accepted again after compact + defrag + disarm",
        isinstance(ok, dict) and "error" not in ok,
        str(ok),
    )
    _expect_resolved(ctx, "etcdNoSpaceAlarm", PAGE, timeout=40)
    _expect_resolved(ctx, "etcdDatabaseQuotaLowSpace", PAGE, timeout=40)


# ---------------------------------------------------------------------------------------
# 8. membership: replace-member, grow, even-members

MEMBERSHIP = panels.panel(
    "raftmon-overview", "How many voters and learners, and how many failures can the cluster take?"
)
# Scenarios that change the membership lower --snapshot-count, and fill the log past it,
# so a fresh member catches up by snapshot, as one joining a long-lived cluster does.
# Both etcd and raftmon keep 5000 entries after a snapshot for slow followers (2000
# writes were caught up from the log), hence the 5000 on top.
SNAPSHOT_COUNT = 1000
FILL_WRITES = 5000 + 3 * SNAPSHOT_COUNT // 2
# raftmon takes etcd 3.5's --experimental-snapshot-catchup-entries: keeping 200 entries
# needs a far shorter fill for the same snapshot catch-up (less time, less load).
RAFTMON_CATCHUP = 200
RAFTMON_FILL_WRITES = RAFTMON_CATCHUP + 3 * SNAPSHOT_COUNT // 2


def _snapshot_flags(target: str) -> tuple[list[str], int]:
    """The flags that make a new member catch up by snapshot, and the writes that fill
    the log far enough for it."""
    flags = [f"--snapshot-count={SNAPSHOT_COUNT}"]
    if target == "raftmon":
        return [*flags, f"--experimental-snapshot-catchup-entries={RAFTMON_CATCHUP}"], (
            RAFTMON_FILL_WRITES
        )
    return flags, FILL_WRITES


# The lab's 45 s for a routed alert, with room for a loaded machine (the `for` is 15 s).
ROUTE_TIMEOUT = 60
MEMBERSHIP_ALERTS = [
    "etcdMembersDown",
    "etcdInsufficientMembers",
    "etcdNoLeader",
    "etcdEvenNumberOfMembers",
    "etcdLearnerNotCatchingUp",
]


def _start_changing(
    ctx: RunContext, target: str, size: int, extra: list[str] | None = None
) -> MembershipCluster:
    """A cluster whose membership the run changes: raftmon's, or etcd 3.4's own."""
    if target == "raftmon":
        return ctx.start_raftmon(size, extra=extra)
    binary = shutil.which(ETCD)
    if binary is None:
        raise RuntimeError("etcd not found: install Debian's etcd-server (make tools)")
    base = ctx.base_dir / "etcd"
    shutil.rmtree(base, ignore_errors=True)
    cluster = EtcdMembershipCluster(binary, base, size, extra_args=extra, authority=ctx.authority)
    ctx.clusters.append(cluster)
    cluster.start(timeout=60)
    ctx._register(cluster)
    ctx.step(f"etcd 3.4 cluster of {size} up, leader {cluster.leader()}")
    return cluster


def _follow_membership(ctx: RunContext, cluster: MembershipCluster) -> None:
    """Scrape targets = the members now (file_sd: Prometheus re-reads within a second).

    A removed member's target goes at once (Prometheus marks its series stale, so `up`
    of a member that no longer exists stops counting); a new member's is added once it
    answers, so its first scrape already finds it up.
    """
    members = [Member(m.name, hostport(m.metrics_url)) for m in cluster.members]
    ctx.stack.register(ctx.run, members, scheme="https" if ctx.authority else "http")
    ctx.stack.wait_scraped(ctx.run, len(members), timeout=30)


def _voter_endpoints(cluster: MembershipCluster, learners: set[str]) -> list[str]:
    """Where clients write: live voters (a learner refuses client requests, as etcd's)."""
    return [
        m.client_url for m in cluster.members if m.name not in learners and m.alive
    ] or cluster.endpoints


def _fill_log(ctx: RunContext, cluster: MembershipCluster, writes: int) -> None:
    """Write `writes` small keys as fast as the cluster takes them (bounded: 120 s)."""
    filler = ctx.writer(cluster.endpoints, clients=8, rate=0, timeout=5.0)
    t = time.time()
    ctx.observer.wait(
        f"{writes} writes acknowledged (log past --snapshot-count={SNAPSHOT_COUNT})",
        lambda: len(filler.acknowledged()) >= writes,
        120,
    )
    filler.stop()
    _window(ctx, "log fill", filler, t)


def _membership_row(ctx: RunContext, label: str) -> dict[str, Any]:
    """voters, learners, quorum, failures tolerated as the overview board computes them."""
    prom = ctx.stack.prometheus
    row: dict[str, Any] = {"step": label}
    names = {"A": "voters", "B": "learners", "C": "quorum", "D": "failures_tolerated"}
    for q in MEMBERSHIP.queries():
        rows = prom.query(panels.substitute(q.expr, cluster=ctx.run)) if prom else []
        row[names.get(q.ref, q.ref)] = int(float(rows[0]["value"][1])) if rows else None
    return row


def _wait_membership_row(ctx: RunContext, label: str, voters: int, learners: int) -> dict[str, Any]:
    """The board's figures once Prometheus has scraped the new membership (bounded)."""
    seen: dict[str, Any] = {}

    def matches() -> bool:
        seen.update(_membership_row(ctx, label))
        return seen.get("voters") == voters and seen.get("learners") == learners

    ctx.observer.wait(f"metrics show {voters} voters and {learners} learners", matches, 30)
    ctx.step(
        f"{label}: voters {seen.get('voters')}, learners {seen.get('learners')}, quorum "
        f"{seen.get('quorum')}, failures tolerated {seen.get('failures_tolerated')}"
    )
    return dict(seen)


def _print_quorum_table(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """The course's table (members, quorum, failures tolerated), from this run's metrics."""
    ctx.measurements["membership_table"] = rows
    lines = ["voters | learners | quorum | failures tolerated | step"]
    lines += [
        f"{r.get('voters')!s:>6} | {r.get('learners')!s:>8} | {r.get('quorum')!s:>6} | "
        f"{r.get('failures_tolerated')!s:>18} | {r['step']}"
        for r in rows
    ]
    for line in lines:
        ctx.step(line)


def _writes_never_stopped(ctx: RunContext, writer: Any, start: float, end: float) -> None:
    """No stretch of more than 5 s without an acknowledged write (a value, not a timing
    assert: elections alone take 1-2 s; a membership change should cost none)."""
    oks = sorted(r.sent for r in writer.records() if r.ok and start <= r.sent < end)
    edges = [start, *oks, end]
    gap = max((b - a for a, b in itertools.pairwise(edges)), default=end - start)
    ctx.measurements["longest_write_gap_seconds"] = round(gap, 2)
    ctx.check(
        "writes never stopped (no 5 s without an acknowledged write)",
        bool(oks) and gap <= 5.0,
        f"{len(oks)} acknowledged, longest gap {gap:.1f} s",
    )


def _every_acknowledged_write_is_there(ctx: RunContext, endpoint: str) -> None:
    """Every write any writer of the run had acknowledged, read back from `endpoint`."""
    acked: dict[str, str] = {}
    missing: list[str] = []
    for w in ctx.writers:
        w.stop()
        got = w.acknowledged()
        acked.update(got)
        stored = _read_prefix(ctx, endpoint, w.prefix + "/", timeout=30)
        missing += [k for k, v in got.items() if stored.get(k) != v]
    ctx.measurements["acknowledged_writes"] = len(acked)
    ctx.measurements["missing_writes"] = len(missing)
    ctx.check(
        f"every acknowledged write is there, read from {endpoint}",
        bool(acked) and not missing,
        f"{len(acked)} acknowledged, {len(missing)} missing"
        + (f", e.g. {missing[:3]}" if missing else ""),
    )


def _snapshot_sent(ctx: RunContext) -> None:
    """The leader sent the new member a snapshot (the log it needed was compacted)."""
    prom = ctx.stack.prometheus
    expr = f'sum(etcd_network_snapshot_send_success{{cluster="{ctx.run}"}})'
    sent: list[float] = []

    def look() -> bool:
        rows = prom.query(expr) if prom else []
        sent[:] = [float(rows[0]["value"][1])] if rows else []
        return bool(sent) and sent[0] >= 1

    ok = ctx.observer.wait("a snapshot was sent to the new member", look, 15)
    ctx.measurements["snapshots_sent"] = sent[0] if sent else 0
    ctx.check(
        "the new member caught up by snapshot (etcd_network_snapshot_send_success)",
        ok,
        f"{sent[0] if sent else 'no'} snapshot(s) sent",
    )


def _expect_fired_and_routed(ctx: RunContext, alert: str, receiver: str) -> bool:
    """`_expect_routed`, once Prometheus itself shows the alert firing: on a loaded
    machine the webhook can hear of it before the lab's next look at Prometheus."""
    ctx.observer.wait(f"{alert} firing", lambda: ctx.observer.fired(alert), ROUTE_TIMEOUT)
    return _expect_routed(ctx, alert, receiver, timeout=ROUTE_TIMEOUT)


def _replace_member(target: str, control: bool) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        flags, fill = _snapshot_flags(target)
        cluster = _start_changing(ctx, target, 3, flags)
        _watch_down(ctx)
        writer = ctx.writer(cluster.endpoints, clients=3, rate=45)
        t0 = time.time()
        _fill_log(ctx, cluster, fill)
        victim = _followers(cluster)[0]
        if control:
            # Planned: the member is healthy, so the safe order is learner first, promote,
            # then remove the old one. Quorum never shrinks; nothing should page or ticket.
            new = cluster.add_member(learner=True, timeout=120)
            _follow_membership(ctx, cluster)
            ctx.fault(f"added {new} as a learner; it caught up")
            refused = cluster.promote(new, timeout=60)
            ctx.fault(f"promoted {new} ({refused} 'not in sync' refusals first)")
            cluster.remove(victim)
            _follow_membership(ctx, cluster)
            writer.set_endpoints(cluster.endpoints)
            ctx.fault(f"removed {victim}: members {', '.join(m.name for m in cluster.members)}")
            _snapshot_sent(ctx)
            # Until no membership rule is pending: one that went pending fires or clears.
            _quiet(ctx, MEMBERSHIP_ALERTS)
            _expect_silent(ctx, MEMBERSHIP_ALERTS)
        else:
            cluster.kill(victim)
            ctx.fault(f"kill -9 {victim} (one of three), under load")
            _expect_fired_and_routed(ctx, "etcdMembersDown", TICKET)
            cluster.remove(victim)
            _follow_membership(ctx, cluster)
            ctx.fault(f"member remove {victim}; its scrape target is gone")
            new = cluster.add_member(learner=False, timeout=120)
            _follow_membership(ctx, cluster)
            writer.set_endpoints(cluster.endpoints)
            ctx.fault(f"member add {new}, started with a fresh data dir; it caught up")
            _snapshot_sent(ctx)
            _expect_resolved(ctx, "etcdMembersDown", TICKET, timeout=ROUTE_TIMEOUT)
            ctx.check(
                "nobody was paged (quorum held throughout)",
                not ctx.observer.routed("etcdInsufficientMembers")
                and not ctx.observer.routed("etcdMembersDown", PAGE),
                f"receivers: {sorted(ctx.observer.receivers('etcdInsufficientMembers'))}",
            )
        listed = cluster.member_list()
        ctx.measurements["member_list"] = [
            {"name": i.name, "id": i.id, "learner": i.is_learner} for i in listed
        ]
        ctx.check(
            "the member list is the three members now running, all voters, all started",
            sorted(i.name for i in listed) == sorted(m.name for m in cluster.members)
            and len(listed) == 3
            and not any(i.is_learner for i in listed),
            ", ".join(
                f"{i.name or '(unstarted)'}{' learner' if i.is_learner else ''}" for i in listed
            ),
        )
        t_end = time.time()
        _writes_never_stopped(ctx, writer, t0 + 1, t_end)
        _window(ctx, "whole run", writer, t0, t_end)
        _every_acknowledged_write_is_there(ctx, cluster.member(new).client_url)

    return body


def _grow(target: str, control: bool) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = _start_changing(ctx, target, 3, [f"--snapshot-count={SNAPSHOT_COUNT}"])
        _watch_down(ctx)
        learners: set[str] = set()
        writer = ctx.writer(cluster.endpoints, clients=3, rate=45)
        t0 = time.time()
        _settle(ctx, 3)
        rows = [_wait_membership_row(ctx, "3 members", 3, 0)]
        for _ in range(2):
            name = cluster.add_member(learner=True, timeout=120)
            learners.add(name)
            _follow_membership(ctx, cluster)
            ctx.fault(f"added {name} as a learner; it caught up")
            voters = len(cluster.members) - len(learners)
            rows.append(_wait_membership_row(ctx, f"+ learner {name}", voters, len(learners)))
            refused = cluster.promote(name, timeout=60)
            learners.discard(name)
            ctx.fault(f"promoted {name} ({refused} 'not in sync' refusals first)")
            writer.set_endpoints(_voter_endpoints(cluster, learners))
            rows.append(_wait_membership_row(ctx, f"{name} promoted", voters + 1, 0))
        _print_quorum_table(ctx, rows)
        _dashboard_shows(ctx, MEMBERSHIP, "5 voters, quorum 3", lambda s: bool(s), timeout=10)
        first, last = rows[0], rows[-1]
        ctx.check(
            "quorum 2 -> 3 and failures tolerated 1 -> 2, read from the metrics",
            (first.get("quorum"), last.get("quorum")) == (2, 3)
            and (first.get("failures_tolerated"), last.get("failures_tolerated")) == (1, 2),
            f"quorum {first.get('quorum')} -> {last.get('quorum')}, failures tolerated "
            f"{first.get('failures_tolerated')} -> {last.get('failures_tolerated')}",
        )
        if control:
            # The grow itself passed through 4 voters for a few seconds: no rule may fire.
            _quiet(ctx, MEMBERSHIP_ALERTS)
            _expect_silent(ctx, MEMBERSHIP_ALERTS)
            _writes_never_stopped(ctx, writer, t0 + 1, time.time())
            return
        victims = _followers(cluster)[:2]
        for name in victims:
            cluster.kill(name)
        t_kill = time.time()
        writer.set_endpoints(_voter_endpoints(cluster, learners))
        ctx.fault(f"kill -9 {' and '.join(victims)} (two of five)")
        _expect_fired_and_routed(ctx, "etcdMembersDown", TICKET)
        _settle(ctx, 12)  # past etcdInsufficientMembers' lab `for`, had it been pending
        win = _window(ctx, "two of five down", writer, t_kill + 2)
        ctx.check(
            "writes continue with two of five members down",
            win.ok > 0 and win.failed <= max(3, win.ok // 20),
            f"{win.ok} ok, {win.failed} failed",
        )
        ctx.check(
            "etcdInsufficientMembers stayed silent (3 of 5 voters up is a quorum)",
            not ctx.observer.fired("etcdInsufficientMembers"),
        )
        _every_acknowledged_write_is_there(ctx, _alive_endpoint(cluster))

    return body


def _partition_members(ctx: RunContext, cluster: LocalCluster, sides: list[list[str]]) -> None:
    """`_partition`, for a cluster whose membership changed at run time.

    A member that does not know a peer by name (one added after it started, if its fault
    injection only knows its --initial-cluster) refuses the whole request: the link from
    it to that peer stays up and is noted, and the peer's own cut still drops the other
    direction.
    """
    uncut: list[str] = []
    for side in sides:
        others = [n for s in sides if s is not side for n in s]
        for name in side:
            peers = list(others)
            while peers:
                m = cluster.member(name)
                body = {"peers": {o: {"drop": True} for o in peers}}
                answer = ctx.http_json(m.metrics_url + "/raftmon/faults", body)
                said = str(answer.get("message", "")) if isinstance(answer, dict) else ""
                unknown = [o for o in peers if f"unknown member '{o}'" in said]
                if not unknown:
                    if not isinstance(answer, dict) or "error" in answer:
                        raise RuntimeError(f"fault injection on {name} refused: {answer}")
                    break
                peers = [o for o in peers if o not in unknown]
                uncut += [f"{name}->{o}" for o in unknown]
    ctx.fault(
        "partition "
        + " | ".join(",".join(s) for s in sides)
        + (f" (links {', '.join(uncut)} not cut: unknown to the sender)" if uncut else "")
    )
    ctx.measurements["links_not_cut"] = uncut


def _even_members(control: bool) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        cluster = ctx.start_raftmon(3)
        _watch_down(ctx)
        lead = cluster.wait_leader(20)
        # The new member goes to the leader's side, so both sides of the split hold two.
        name = cluster.add_member(learner=control, timeout=120)
        _follow_membership(ctx, cluster)
        role = "learner" if control else "voter"
        ctx.fault(f"added {name} as a {role}: 3 voting members -> {3 if control else 4}")
        row = _wait_membership_row(ctx, f"+ {role} {name}", 3 if control else 4, int(control))
        _print_quorum_table(ctx, [row])
        if control:
            # A learner does not vote: the cluster stays at 3 voters, and the rule silent.
            _quiet(ctx, ["etcdEvenNumberOfMembers", "etcdInsufficientMembers"])
            _expect_silent(ctx, ["etcdEvenNumberOfMembers", "etcdInsufficientMembers"])
            return
        _expect_fired_and_routed(ctx, "etcdEvenNumberOfMembers", TICKET)
        ctx.check(
            "quorum 3 and failures tolerated 1 with 4 voters, as with 3 (from the metrics)",
            (row.get("quorum"), row.get("failures_tolerated")) == (3, 1),
            f"quorum {row.get('quorum')}, failures tolerated {row.get('failures_tolerated')}",
        )
        others = [m.name for m in cluster.members if m.name not in (lead, name)]
        sides = [[lead, others[0]], [others[1], name]]
        url = {m.name: m.client_url for m in cluster.members}
        writers = [
            ctx.writer([url[n] for n in side], clients=2, rate=30, timeout=2.0) for side in sides
        ]
        _settle(ctx, 3)
        _partition_members(ctx, cluster, sides)
        t_cut = time.time()
        _expect_fired_and_routed(ctx, "etcdNoLeader", PAGE)
        _settle(ctx, 3)
        t_heal = time.time()
        results = []
        for side, w in zip(sides, writers, strict=True):
            win = _window(ctx, f"partitioned, side {','.join(side)}", w, t_cut + 3, t_heal)
            results.append({"members": side, "ok": win.ok, "failed": win.failed})
        ctx.measurements["partitioned"] = results
        ctx.check(
            "a 2|2 split of four members stops writes on both sides (no side has 3 of 4)",
            all(r["ok"] == 0 for r in results),
            "; ".join(f"{','.join(r['members'])}: {r['ok']} ok" for r in results),
        )
        ctx.clear_faults(cluster)
        ctx.fault("partition healed")
        cluster.wait_leader(30)

    return body


# ---------------------------------------------------------------------------------------
# the catalogue


def _spec(
    scenario: str,
    run: str,
    body: Callable[[RunContext], None],
    *,
    target: str = "raftmon",
    control: bool = False,
    dashboards: tuple[panels.Ref, ...] = (),
) -> RunSpec:
    # Every run that fires an alert checks the firing-alerts table (in _expect_routed).
    shown = dashboards if control else (FIRING_ALERTS, *dashboards)
    return RunSpec(scenario, run, target, control, body, shown)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "slow-disk",
            "30 ms extra fsync on every member: etcdWALFsyncSlow tickets, then resolves; "
            "20 ms stays silent",
            (
                _spec(
                    "slow-disk",
                    "slow-disk",
                    _slow_disk(0.030, control=False),
                    dashboards=(FSYNC_DELAY,),
                ),
                _spec(
                    "slow-disk", "slow-disk-control", _slow_disk(0.020, control=True), control=True
                ),
            ),
        ),
        Scenario(
            "leader-flapping",
            "5 leadership moves in ~10 s: etcdLeaderChangesTooFrequent pages; a leader whose "
            "ticks stop loses leadership; a rolling restart stays silent",
            (
                _spec(
                    "leader-flapping",
                    "leader-flapping",
                    _leader_flapping,
                    dashboards=(LEADER_CHANGES, TICKS_PAUSED),
                ),
                _spec("leader-flapping", "leader-flapping-control", _rolling_restart, control=True),
            ),
        ),
        Scenario(
            "member-down",
            "one of three killed: etcdMembersDown tickets; writes keep succeeding",
            (
                _spec("member-down", "member-down", _member_down("raftmon")),
                _spec("member-down", "member-down-etcd", _member_down("etcd"), target="etcd"),
            ),
        ),
        Scenario(
            "quorum-loss",
            "two of three killed: etcdInsufficientMembers and etcdNoLeader page; "
            "acknowledged writes survive",
            (
                _spec("quorum-loss", "quorum-loss", _quorum_loss("raftmon")),
                _spec("quorum-loss", "quorum-loss-etcd", _quorum_loss("etcd"), target="etcd"),
            ),
        ),
        Scenario(
            "partitions",
            "1|2 of three keeps a writable majority; 2|2 of four writes nowhere",
            (
                _spec("partitions", "partitions-3", _partitions(3), dashboards=(PEER_DROP,)),
                _spec("partitions", "partitions-4", _partitions(4), dashboards=(PEER_DROP,)),
            ),
        ),
        Scenario(
            "slow-network",
            "60 ms on every peer link: write latency rises ~2 x 60 ms; "
            "etcdMemberCommunicationSlow tickets",
            (
                _spec(
                    "slow-network",
                    "slow-network",
                    # 2 x 60 ms lands every probe's round trip inside the (102.4, 204.8] ms
                    # bucket; 2 x 50 ms sat on the 102.4 ms edge, so the alert's p99 flickered.
                    _slow_network(0.060),
                    dashboards=(PEER_DELAY,),
                ),
            ),
        ),
        Scenario(
            "replace-member",
            "kill -9 one of three under load, remove it, add a fresh member that catches up "
            "by snapshot: etcdMembersDown tickets then resolves, no page, no write lost; "
            "control: a planned learner-first replacement stays silent",
            (
                _spec("replace-member", "replace-member", _replace_member("raftmon", False)),
                _spec(
                    "replace-member",
                    "replace-member-control",
                    _replace_member("raftmon", True),
                    control=True,
                ),
                _spec(
                    "replace-member",
                    "replace-member-etcd",
                    _replace_member("etcd", False),
                    target="etcd",
                ),
            ),
        ),
        Scenario(
            "grow",
            "3 -> 5 live (learners, then promoted): quorum 2 -> 3 and failures tolerated "
            "1 -> 2 from the metrics; two killed and writes continue; control: the grow alone "
            "stays silent",
            (
                _spec("grow", "grow", _grow("raftmon", False), dashboards=(MEMBERSHIP,)),
                _spec("grow", "grow-control", _grow("raftmon", True), control=True),
                _spec(
                    "grow",
                    "grow-etcd",
                    _grow("etcd", False),
                    target="etcd",
                    dashboards=(MEMBERSHIP,),
                ),
            ),
        ),
        Scenario(
            "even-members",
            "3 -> 4 voters: etcdEvenNumberOfMembers tickets and a 2|2 split stops writes; "
            "control: a fourth member as a learner stays silent",
            (
                _spec("even-members", "even-members", _even_members(False)),
                _spec("even-members", "even-members-control", _even_members(True), control=True),
            ),
        ),
        Scenario(
            "quota",
            "small quota filled: NOSPACE, etcdDatabaseQuotaLowSpace; "
            "compact + defrag + disarm recover",
            (_spec("quota", "quota", _quota, dashboards=(ALARMS, CLIENT_FAILURES)),),
        ),
    )
}


def all_runs(include_etcd: bool = True) -> list[RunSpec]:
    return [r for s in SCENARIOS.values() for r in s.runs if include_etcd or r.target == "raftmon"]


# ---------------------------------------------------------------------------------------
# running


def run_one(
    spec: RunSpec,
    stack: LabStack,
    base_dir: Path,
    on_event: Callable[[str, Event], None] | None = None,
    authority: Authority | None = None,
) -> RunResult:
    """Run one spec to the end; never raises (a crash becomes `error` on the result).

    A `tls` spec runs its clusters on certificates from `authority`, the CA whose
    tls_config the shared Prometheus was started with.
    """
    timeline = Timeline(spec.run, on_event)
    ca = authority if spec.tls else None
    ctx = RunContext(stack, Path(base_dir) / spec.run, spec.run, timeline, authority=ca)
    result = RunResult(spec.scenario, spec.run, spec.target, spec.control)
    try:
        if spec.tls and (authority is None or stack.tls_config is None):
            raise RuntimeError("a --tls run needs the lab's CA, and Prometheus its tls_config")
        if not stack.monitoring:
            raise RuntimeError(
                "Prometheus/Alertmanager missing (" + ", ".join(stack.missing) + "): "
                "scenarios need them; install with `make tools`"
            )
        if spec.target == "etcd" and shutil.which(ETCD) is None:
            raise RuntimeError("etcd missing: install Debian's etcd-server (`make tools`)")
        spec.body(ctx)
    except Cancelled:
        result.error = "interrupted"
    except Exception as exc:
        log.exception("run failed run=%s", spec.run)
        result.error = f"{type(exc).__name__}: {exc}"
        timeline.add("note", f"run crashed: {result.error.splitlines()[0]}")
    finally:
        # Before the clusters stop: the boards' instant tables read their last state.
        _write_dashboards(stack, spec.run, timeline, ctx)
        result.logs = ctx.close()
    result.checks = ctx.checks
    result.events = timeline.events()
    result.measurements = ctx.measurements
    result.notifications = ctx.observer.notifications()
    return result


def _write_dashboards(stack: LabStack, run: str, timeline: Timeline, ctx: RunContext) -> None:
    """The run's dashboards.html beside its files; its path goes in the measurements."""
    from lab import report

    if stack.prometheus is None or CANCEL.is_set():
        return
    page = report.write_dashboards(stack, run, timeline, Path(ctx.base_dir) / "dashboards.html")
    if page is not None:
        ctx.measurements[report.DASHBOARDS_HTML] = str(page)


def run_specs(
    specs: list[RunSpec],
    stack: LabStack,
    base_dir: Path,
    *,
    concurrency: int = 2,
    on_event: Callable[[str, Event], None] | None = None,
    authority: Authority | None = None,
) -> list[RunResult]:
    """Run specs on one shared stack, `concurrency` at a time; results in spec order.

    `authority`: the one CA every `tls` spec's clusters are signed by (see `lab_authority`).
    """
    CANCEL.clear()
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="lab-run")
    futures = [pool.submit(run_one, s, stack, base_dir, on_event, authority) for s in specs]
    try:
        return [f.result() for f in futures]
    except BaseException:
        CANCEL.set()  # running runs unwind through their `finally` and stop their clusters
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def lab_stack(base_dir: Path, tls: bool) -> tuple[LabStack, Authority | None]:
    """The shared monitoring stack and, with `tls`, the invocation's one CA.

    Prometheus reads its tls_config once, at start, and every https run shares it: so one
    CA (under `<base>/tls`) signs every cluster of the invocation, and its client
    certificate is what Prometheus and every lab client present.
    """
    authority = make_authority(Path(base_dir) / "tls") if tls else None
    tls_config = authority.prometheus_tls_config() if authority else None
    return LabStack(Path(base_dir) / "monitoring", tls_config=tls_config), authority


# ---------------------------------------------------------------------------------------
# CLI


def main(argv: list[str]) -> int:
    from lab import report  # rich is only needed for the CLI

    parser = argparse.ArgumentParser(
        prog="raftmon lab",
        description="Rehearse an etcd emergency end to end "
        "(real cluster, Prometheus, Alertmanager).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n"
        + "\n".join(f"  {s.name:<16} {s.summary}" for s in SCENARIOS.values()),
    )
    parser.add_argument("scenario", help="a scenario name, `list`, or `all`")
    parser.add_argument(
        "--etcd",
        action="store_true",
        help="run on a real etcd 3.4 cluster (member-down, quorum-loss, replace-member, grow)",
    )
    add_data_dir(parser, "var/lab", "folder for everything the lab writes")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="runs at a time (`all`; default 2)"
    )
    add_run_flags(
        parser,
        tls_help="every cluster on https with client and peer certificates required, all "
        "signed by one CA made for this invocation (under DATA_DIR/<scenario>/tls); "
        "Prometheus and every lab client present its client certificate",
        quiet_help="no live timeline, only the summary",
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)

    if args.scenario == "list":
        report.print_scenarios(SCENARIOS)
        return 0
    if args.scenario == "all":
        specs = all_runs()
    elif args.scenario in SCENARIOS:
        specs = SCENARIOS[args.scenario].selected(args.etcd)
        if not specs:
            print(
                f"raftmon lab: {args.scenario} has no etcd variant "
                "(only member-down, quorum-loss, replace-member and grow)",
                file=sys.stderr,
            )
            return 2
    else:
        print(
            f"raftmon lab: unknown scenario {args.scenario!r}; try `raftmon lab list`",
            file=sys.stderr,
        )
        return 2

    if args.tls:
        specs = [with_tls(s) for s in specs]
    base = args.data_dir / args.scenario
    shutil.rmtree(base, ignore_errors=True)
    stack, authority = lab_stack(base, args.tls)
    printer = None if args.quiet else report.LivePrinter()
    # Ctrl-C and SIGTERM both unwind through `finally`, which stops every child.
    with interrupt_on_signals():
        try:
            stack.start()
            if not stack.monitoring:
                print(
                    "raftmon lab: missing "
                    + ", ".join(stack.missing)
                    + "; install with `make tools`",
                    file=sys.stderr,
                )
                return 1
            concurrency = args.concurrency if args.scenario == "all" else len(specs)
            results = run_specs(
                specs, stack, base, concurrency=concurrency, on_event=printer, authority=authority
            )
        except KeyboardInterrupt:
            print(
                "\nraftmon lab: interrupted; everything it started is being stopped",
                file=sys.stderr,
            )
            return 130
        finally:
            stack.stop()
    report.print_results(results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
