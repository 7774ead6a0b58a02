"""Live: a real Prometheus scrapes a real 3-member cluster under load; every panel has data.

Two variants run the same check:
- etcd 3.4 (Debian's /usr/bin/etcd): proves the boards work on real etcd, whose metric
  names raftmon copies; families etcd 3.4 does not have (the catalog's `since`) are skipped;
- raftmon (`lab.cluster.LocalCluster`): proves them on our member.

Prometheus scrapes every second, evaluates the mixin's recording rules (and alerts) every
second, and each panel query is run as an instant query with Grafana's variables filled in
as Grafana would: `$cluster` = this cluster, `$instance` = all (`.*`), `$__rate_interval` =
15 s. Queries that only have data while something is wrong are listed in FAULT_ONLY with the
reason and the lab run that checks them while its fault lasts (lab/scenarios.py runs the
same expressions through lab.panels; tests/lab/test_dashboards.py asserts those checks
passed). Annotations mark events, so the healthy check skips them too: the raftmon variant
injects every fault kind at once below, and each lab run checks the annotation of its own
fault. Exempt queries must still be accepted by Prometheus here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.catalog import by_name
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.procs import free_ports, hostport, http_get, http_json, load_generator, wait_until
from lab.prom import LOADGEN_JOB, Member, Prometheus
from lab.scenarios import all_runs
from tests.dashboards.boards import (
    Query,
    all_queries,
    family_of,
    load_boards,
    metric_names,
    substitute,
)
from tests.helpers import require_tool

CLUSTER = "dashboards-live"
RATE = "15s"
WAIT_SECONDS = 120.0

# (board uid, panel title) -> why it has no data on a healthy cluster, and the lab run (as
# "lab run `name`") and check that prove it has data during the fault.
FAULT_ONLY: dict[tuple[str, str], str] = {
    ("raftmon-overview", "Which alarms are raised, and on which member?"): (
        "series exist only while a NOSPACE/CORRUPT alarm is raised; lab run `quota`: "
        "\"dashboard: 'Which alarms are raised, and on which member?' shows the NOSPACE alarm\""
    ),
    ("raftmon-overview", "Which alerts are firing?"): (
        "ALERTS{alertstate=firing} exists only while an alert fires; every lab run whose alert "
        "is routed, e.g. lab run `member-down`: "
        "\"dashboard: 'Which alerts are firing?' shows etcdMembersDown\""
    ),
    ("raftmon-loadtest", "Which client requests fail, and why?"): (
        "outcome!=success children appear at the first failed request; lab run `quota` runs "
        "`raftmon load --metrics-port` into NOSPACE: \"dashboard: 'Which client requests "
        "fail, and why?' shows the load generator's puts failing with no_space\""
    ),
}
# etcd 3.4 creates these labelled children lazily, at the first event; raftmon pre-creates
# them per peer (value 0), so on raftmon they are required like any other panel.
ETCD34_LAZY: dict[tuple[str, str], str] = {
    ("raftmon-network", "Are sends to peers failing?"): (
        "etcd creates the To/From children at the first failure (lab: partition)"
    ),
    ("raftmon-network", "How often do peer connections drop?"): (
        "etcd creates the Local/Remote children at the first disconnect (lab: kill a member)"
    ),
}
# Queries over a family etcd 3.4 lacks that must still have data there, and why.
ETCD34_FALLBACK: dict[tuple[str, str], str] = {
    ("raftmon-overview", "Are any alarms raised?"): (
        "etcd_debugging_server_alarms is 3.6+, and the stat falls back to 0 per cluster"
    ),
}
# Annotations mark events (a fault injected, leadership moved): nothing to mark when healthy.
# Lab runs that check each while its event lasts (`RunSpec.dashboards`): leader-flapping
# (Leader changes, Raft ticks paused: the stalled leader), slow-disk (WAL fsync delay),
# slow-network (peer delay), partitions-3 and partitions-4 (peer messages dropped).
ANNOTATIONS_ARE_FAULT_ONLY = "annotation queries return series only while their event lasts"


def _etcd34_lacks(query: Query) -> bool:
    """True when a query needs a family etcd 3.4 does not expose (raftmon_*, 3.5+ families)."""
    for series in metric_names(query.expr):
        if series.startswith(("raftmon_loadgen_", "cluster:", "instance")) or series in (
            "up",
            "ALERTS",
        ):
            continue
        family = family_of(series)
        try:
            since = by_name(family).since
        except KeyError:
            continue
        if since != "3.4":
            return True
    return False


def _exempt(query: Query) -> bool:
    return query.ref == "annotation" or (query.board, query.panel) in FAULT_ONLY


def test_fault_only_exemptions_name_real_panels() -> None:
    titles = {(b["uid"], p["title"]) for b in load_boards().values() for p in b["panels"]}
    assert set(FAULT_ONLY) <= titles
    assert set(ETCD34_FALLBACK) <= titles
    assert set(ETCD34_LAZY) <= titles


def _lab_coverage() -> dict[tuple[str, str], set[str]]:
    """(board uid, panel title or annotation name) -> the lab runs that check it."""
    runs: dict[tuple[str, str], set[str]] = {}
    for spec in all_runs():
        for ref in spec.dashboards:
            for key in ref.keys():
                runs.setdefault(key, set()).add(spec.run)
    return runs


def test_every_fault_only_panel_and_annotation_is_checked_by_a_lab_run() -> None:
    """Nothing exempt here goes unchecked: a lab run queries it while its fault lasts.

    tests/lab/test_dashboards.py then asserts that each declared check ran and passed.
    """
    covered = _lab_coverage()
    annotations = {(q.board, q.panel) for q in all_queries(load_boards()) if q.ref == "annotation"}
    assert annotations, "no annotations found"
    unchecked = sorted((set(FAULT_ONLY) | annotations) - set(covered))
    assert not unchecked, f"fault-only items no lab run checks: {unchecked}"
    for key, reason in FAULT_ONLY.items():
        named = [run for run in covered[key] if f"lab run `{run}`" in reason]
        assert named, f"{key}: the reason names none of the runs that check it {covered[key]}"


def _wait_for_series(prom: Prometheus, required: dict[str, list[Query]]) -> list[str]:
    """Re-run the still-empty queries once a second until all have series or time is up."""
    pending = dict(required)
    deadline = time.monotonic() + WAIT_SECONDS
    while pending and time.monotonic() < deadline:
        for expr in list(pending):
            if prom.query(expr):
                del pending[expr]
        if pending:
            time.sleep(1.0)
    return [f"{q}: {expr}" for expr, qs in pending.items() for q in qs]


def _check_every_query_has_data(prom: Prometheus, *, etcd34: bool) -> None:
    queries = [q for q in all_queries(load_boards()) if q.ref != "variable"]
    required: dict[str, list[Query]] = {}
    optional: list[Query] = []
    for q in queries:
        key = (q.board, q.panel)
        lacking = etcd34 and (
            key in ETCD34_LAZY or (_etcd34_lacks(q) and key not in ETCD34_FALLBACK)
        )
        if _exempt(q) or lacking:
            optional.append(q)
        else:
            expr = substitute(q.expr, rate=RATE, cluster=CLUSTER, instance=".*")
            required.setdefault(expr, []).append(q)

    assert len(required) >= 40, "exemptions swallowed most of the queries"

    missing = _wait_for_series(prom, required)
    assert not missing, (
        f"{len(missing)} of {len(required)} queries returned no series within "
        f"{WAIT_SECONDS}s:\n" + "\n".join(missing) + "\n\ntargets:\n" + prom.targets_summary()
    )

    # Exempt queries must still be valid for a real Prometheus (it raises on errors).
    for q in optional:
        prom.query(substitute(q.expr, rate=RATE, cluster=CLUSTER, instance=".*"))

    # The variables resolve: this cluster, and its three members.
    selector = next(q.expr for q in all_queries(load_boards()) if q.panel == "cluster")
    assert CLUSTER in prom.label_values("cluster", selector)
    instance_sel = next(q.expr for q in all_queries(load_boards()) if q.panel == "instance")
    members = prom.label_values(
        "instance", substitute(instance_sel, rate=RATE, cluster=CLUSTER, instance=".*")
    )
    assert len(members) == 3, members


def _watch(
    stack: contextlib.ExitStack, base: Path, members: list[Member], endpoints: list[str]
) -> Prometheus:
    """Light open-loop load on `endpoints`, and a Prometheus scraping it and `members`.

    Prometheus runs the production rules (alerts/out), every second; both children are
    stopped by `stack`, Prometheus first.
    """
    prometheus_bin = require_tool("prometheus")
    port = free_ports(1)[0]
    load = load_generator(
        "loadgen",
        base / "loadgen.log",
        endpoints,
        ["--conns=2", "--clients=4", "--rate=30", "--duration=600s", f"--metrics-port={port}"],
        ["--key-space-size=100", "--val-size=64"],
    )
    stack.callback(load.stop)
    load.start()
    metrics = f"http://127.0.0.1:{port}/metrics"
    wait_until("load generator metrics", lambda: http_get(metrics), 20, detail=load.tail)
    prom = Prometheus(prometheus_bin, base / "prometheus", lab=False)
    stack.callback(prom.stop)
    prom.start()
    prom.set_targets(CLUSTER, members)
    prom.set_targets(CLUSTER, [Member("loadgen", f"127.0.0.1:{port}")], LOADGEN_JOB)
    return prom


@pytest.fixture
def etcd_stack(tmp_path: Path) -> Iterator[Prometheus]:
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(EtcdCluster(require_tool("etcd"), tmp_path / "etcd"))
        members = [Member(m.name, hostport(m.metrics_url)) for m in etcd.members]
        yield _watch(stack, tmp_path, members, etcd.endpoints)


@pytest.mark.cluster
@pytest.mark.tools
def test_every_panel_query_has_data_on_a_loaded_etcd_34_cluster(etcd_stack: Prometheus) -> None:
    _check_every_query_has_data(etcd_stack, etcd34=True)


@pytest.fixture
def raftmon_stack(tmp_path: Path) -> Iterator[tuple[Prometheus, LocalCluster]]:
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(LocalCluster(tmp_path / "cluster", 3))
        members = [Member(m.name, hostport(m.metrics_url)) for m in cluster.members]
        yield _watch(stack, tmp_path, members, cluster.endpoints), cluster


@pytest.mark.cluster
@pytest.mark.tools
def test_every_panel_query_has_data_on_a_loaded_raftmon_cluster(
    raftmon_stack: tuple[Prometheus, LocalCluster],
) -> None:
    prom, cluster = raftmon_stack
    _check_every_query_has_data(prom, etcd34=False)
    _check_fault_annotations_mark_injected_faults(prom, cluster)


def _check_fault_annotations_mark_injected_faults(prom: Prometheus, cluster: LocalCluster) -> None:
    """Move leadership, then inject every fault kind; each annotation marks its event.

    MoveLeader gives the leader-change annotation a change to mark. The faults are small
    (30 ms fsync, 10 ms peer delay), the dropped link joins two followers and the paused
    ticks belong to a follower, so the cluster keeps its leader and quorum throughout.
    """
    old = cluster.wait_leader()
    new, other = (m.name for m in cluster.members if m.name != old)
    status = cluster.status(new)
    assert status is not None
    reply = http_json(
        cluster.member(old).client_url + "/v3/maintenance/transfer-leadership",
        {"targetID": status["header"]["member_id"]},
    )
    assert "error" not in reply, reply
    assert cluster.wait_leader(exclude=old) == new
    faults: dict[str, dict[str, Any]] = {
        new: {"wal_fsync_delay_seconds": 0.03, "peers": {other: {"delay_seconds": 0.01}}},
        other: {"peers": {old: {"drop": True}}},
        old: {"ticks_paused": True},
    }
    try:
        for name, body in faults.items():
            reply = http_json(cluster.member(name).metrics_url + "/raftmon/faults", body)
            assert "error" not in reply, reply
        _wait_for_annotations(prom)
    finally:
        for m in cluster.members:
            with contextlib.suppress(OSError):  # best effort: the member may be gone
                http_json(f"{m.metrics_url}/raftmon/faults", method="DELETE", timeout=2.0)


def _wait_for_annotations(prom: Prometheus) -> None:
    annotations = {
        substitute(q.expr, rate=RATE, cluster=CLUSTER, instance=".*"): [q]
        for q in all_queries(load_boards())
        if q.ref == "annotation"
    }
    missing = _wait_for_series(prom, annotations)
    assert not missing, "annotations without data after injecting faults:\n" + "\n".join(missing)
