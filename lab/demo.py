"""`make demo` / `raftmon demo`: from nothing to a loaded, watched cluster and a report.

A local 3-member cluster; Prometheus scraping it every second with the compressed-time
lab rules (alerts/out/lab); Alertmanager with our routing delivering to a local webhook
receiver; `raftmon load` for --duration seconds (30); a slow-disk fault (+30 ms inside
every WAL fsync) on the leader half-way; then a report: throughput and latency, the
leader, per-member fsync average and p99 before and after the fault, proposals, leader
changes, the alerts that fired and the receiver each reached, and the HTML load report.

Why the lab rules: the production rules wait `for: 5m` before etcdWALFsyncSlow fires, far
longer than the demo. The lab variant keeps every threshold (25 ms average fsync) and
only shortens windows and `for` to seconds, so the alert fires and is routed in the run.
The 10 s mean needs ~10 s of slow fsyncs to cross 25 ms and then 10 s of `for`; a light
writer keeps fsyncs coming after the main load ends until the alert is routed (at most
--settle seconds), so the alert is seen even on a slow machine.

Without Prometheus/Alertmanager the demo says what is missing and runs the cluster, the
load, the fault and the report (fsync figures come from /metrics either way).
Everything it starts is stopped at the end, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from lab.certs import client_flags
from lab.children import interrupt_on_signals
from lab.cluster import LocalCluster
from lab.flags import add_data_dir, add_run_flags, configure_logging
from lab.memberstats import MemberSnapshot, fsync_between, snapshot
from lab.procs import ManagedProcess, free_ports, hostport, http_json, load_generator
from lab.prom import LOADGEN_JOB, PACKAGES, LabStack, Member
from lab.report import LivePrinter, write_dashboards
from lab.runtime import RAFTMON_TIMING
from lab.timeline import MetricWatch, Observer, Timeline
from lab.writer import Writer

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)

CLUSTER = "demo"
ALERT = "etcdWALFsyncSlow"
FSYNC_MEAN = (
    f'max by (instance) (instance:etcd_disk_wal_fsync_duration_seconds:mean{{cluster="{CLUSTER}"}})'
)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


class Demo:
    """One demo run; `run()` does the work, `stop()` (always called) ends every process."""

    def __init__(self, args: argparse.Namespace, out: Console) -> None:
        self.args = args
        self.out = out
        self.data: Path = args.data_dir
        self.stack = LabStack(self.data / "monitoring")
        self.cluster: LocalCluster | None = None
        self.tls: ssl.SSLContext | None = None  # --tls: CA + client certificate
        self.load: ManagedProcess | None = None
        self.writer: Writer | None = None
        self.observer: Observer | None = None
        self.timeline = Timeline(CLUSTER, None if args.quiet else LivePrinter(out))

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.load is not None:
            self.load.stop(grace=5)
        if self.observer is not None:
            self.observer.stop()
        if self.cluster is not None:
            self.cluster.stop()
        self.stack.stop()

    # ---- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        args = self.args
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True, exist_ok=True)
        # --tls: certificates exist once the cluster is described; Prometheus needs them
        # in its config (tls_config) before it starts.
        self.cluster = LocalCluster(
            self.data / "cluster", 3, extra_args=RAFTMON_TIMING, tls=args.tls
        )
        certs = self.cluster.certs
        self.tls = self.cluster.client_ssl
        if certs is not None:
            self.stack.tls_config = certs.prometheus_tls_config()
        self.stack.start()
        if self.stack.missing:
            pkgs = " ".join(sorted({PACKAGES[m] for m in self.stack.missing}))
            self.out.print(
                f"[yellow]missing: {', '.join(self.stack.missing)}[/] — running the cluster, load, "
                f"fault and report without Prometheus and Alertmanager "
                f"(install: sudo apt-get install {pkgs}, or `make tools`)"
            )
        self.cluster.start(timeout=60)
        members = self.cluster.members
        self.stack.register(
            CLUSTER,
            [Member(m.name, hostport(m.metrics_url)) for m in members],
            scheme="https" if args.tls else "http",
        )
        self.stack.wait_scraped(CLUSTER, len(members), timeout=30)
        self.observer = Observer(self.stack, CLUSTER, self.timeline)
        self.observer.watch(MetricWatch("WAL fsync mean", FSYNC_MEAN, 0.025, unit="ms"))
        self.observer.start()
        leader = self.cluster.wait_leader(20)
        self.timeline.add("step", f"cluster of 3 up, leader {leader}")

        victim = leader if args.fault_member == "leader" else args.fault_member
        before = self._snapshots()
        load_port = free_ports(1)[0]
        load_dir = self.data / "load"
        self.load = load_generator(
            "load",
            self.data / "load.log",
            self.cluster.endpoints,
            [
                f"--conns={args.conns}",
                f"--clients={args.clients}",
                f"--duration={args.duration}s",
                f"--report-dir={load_dir}",
                f"--metrics-port={load_port}",
                *(client_flags(certs.ca, certs.client) if certs is not None else []),
            ],
            ["--key-space-size=10000", "--val-size=256"],
        )
        self.load.start()
        # Scraped like the lab's load generators: the load-test board's client-side panels.
        self.stack.register(CLUSTER, [Member("load", f"127.0.0.1:{load_port}")], job=LOADGEN_JOB)
        t_load = time.time()
        self.timeline.add(
            "step",
            f"raftmon load: put, {args.clients} clients, {args.duration:g} s "
            f"(report in {load_dir})",
        )
        self.observer.hold(max(0.0, t_load + args.duration * args.fault_at - time.time()))
        http_json(
            self.cluster.member(victim).metrics_url + "/raftmon/faults",
            {"wal_fsync_delay_seconds": args.fault_delay},
            context=self.tls,
        )
        at_fault = self._snapshots()
        t_fault = time.time()
        self.timeline.add(
            "fault", f"slow disk: WAL fsync +{args.fault_delay * 1000:.0f} ms on {victim}"
        )

        assert self.load.proc is not None
        load_deadline = time.monotonic() + args.duration + 30
        while self.load.alive and time.monotonic() < load_deadline:
            self.observer.hold(0.5)
        if self.load.alive:
            self.timeline.add("note", "load generator overran its duration; stopped")
            self.load.stop(grace=5)
        self.timeline.add("step", f"load finished (exit {self.load.proc.returncode})")
        after = self._snapshots()

        routed = self.observer.routed(ALERT)
        if self.stack.monitoring and not routed and args.settle > 0:
            self.timeline.add(
                "step", f"light writes continue until {ALERT} is routed (at most {args.settle:g} s)"
            )
            self.writer = Writer(
                self.cluster.endpoints, prefix="demo/tail", clients=2, rate=40, ssl=self.tls
            )
            self.writer.start()
            self.observer.wait(
                f"{ALERT} routed",
                lambda: self.observer is not None and self.observer.routed(ALERT),
                args.settle,
            )
            self.writer.stop()
        http_json(
            self.cluster.member(victim).metrics_url + "/raftmon/faults",
            method="DELETE",
            context=self.tls,
        )
        self.timeline.add("fault", f"slow disk removed from {victim}")
        self.observer.stop()
        end = self._snapshots()
        report = self._report(victim, t_load, t_fault, before, at_fault, after, end, load_dir)
        report["dashboards_html"] = self._dashboards(load_dir)
        return report

    def _dashboards(self, load_dir: Path) -> str | None:
        """dashboards.html from this run's Prometheus (before it stops), linked both ways."""
        page = write_dashboards(
            self.stack,
            CLUSTER,
            self.timeline,
            self.data / "dashboards.html",
            links={"load report": os.path.relpath(load_dir / "report.html", self.data)},
        )
        if page is None:
            return None
        load_html = load_dir / "report.html"
        if load_html.exists():
            link_page(load_html, os.path.relpath(page, load_dir), "Dashboards of this run")
        return str(page.resolve())

    def _snapshots(self) -> dict[str, MemberSnapshot]:
        assert self.cluster is not None
        return {m.name: snapshot(m.name, m.metrics_url, self.tls) for m in self.cluster.members}

    # ---- the report -------------------------------------------------------------------------
    def _report(
        self,
        victim: str,
        t_load: float,
        t_fault: float,
        before: dict[str, MemberSnapshot],
        at_fault: dict[str, MemberSnapshot],
        after: dict[str, MemberSnapshot],
        end: dict[str, MemberSnapshot],
        load_dir: Path,
    ) -> dict[str, Any]:
        assert self.cluster is not None
        assert self.observer is not None
        load_json: dict[str, Any] = {}
        report_path = load_dir / "report.json"
        if report_path.exists():
            load_json = json.loads(report_path.read_text())
        lat = load_json.get("latency_seconds", {})
        pct = lat.get("percentiles", {})
        members = []
        for name in before:
            pre = fsync_between(before[name], at_fault[name])
            post = fsync_between(at_fault[name], after[name])
            last = end[name]
            members.append(
                {
                    "name": name,
                    "leader": last.is_leader,
                    "slow_disk": name == victim,
                    "fsync_before_fault": {
                        "count": pre.count,
                        "mean_seconds": pre.mean,
                        "p99_seconds": pre.p99,
                    },
                    "fsync_after_fault": {
                        "count": post.count,
                        "mean_seconds": post.mean,
                        "p99_seconds": post.p99,
                    },
                    "proposals_committed": last.committed,
                    "proposals_applied": last.applied,
                    "proposals_failed": last.failed,
                    "proposals_pending": last.pending,
                    "leader_changes_seen": last.leader_changes,
                }
            )
        alerts: dict[tuple[str, str, str], dict[str, Any]] = {}
        for ev in self.timeline.events():
            if ev.kind == "firing" and "alertname" in ev.data:
                key = (
                    ev.data["alertname"],
                    ev.data.get("instance", ""),
                    ev.data.get("severity", ""),
                )
                row = alerts.setdefault(
                    key,
                    {
                        "alertname": key[0],
                        "instance": key[1],
                        "severity": key[2],
                        "fired_at_seconds": None,
                        "receivers": [],
                    },
                )
                if row["fired_at_seconds"] is None:
                    row["fired_at_seconds"] = round(ev.t, 1)
        for n in self.observer.notifications():
            key = (n.alertname, n.instance, n.severity)
            row = alerts.setdefault(
                key,
                {
                    "alertname": n.alertname,
                    "instance": n.instance,
                    "severity": n.severity,
                    "fired_at_seconds": None,
                    "receivers": [],
                },
            )
            if n.status == "firing" and n.receiver not in row["receivers"]:
                row["receivers"].append(n.receiver)
        leader = self.cluster.leader()
        return {
            "cluster": {
                "members": [m.name for m in self.cluster.members],
                "leader": leader,
                "endpoints": self.cluster.endpoints,
            },
            "monitoring": {
                "prometheus": self.stack.prometheus.url if self.stack.prometheus else None,
                "alertmanager": self.stack.alertmanager.url if self.stack.alertmanager else None,
                "rules": "alerts/out/lab (compressed time)",
                "missing": self.stack.missing,
            },
            "fault": {
                "kind": "slow disk",
                "member": victim,
                "wal_fsync_delay_seconds": self.args.fault_delay,
                "injected_after_seconds": round(t_fault - t_load, 1),
            },
            "load": {
                "duration_seconds": load_json.get("total_seconds"),
                "requests_per_second": load_json.get("requests_per_second"),
                "succeeded": load_json.get("succeeded"),
                "failed": load_json.get("failed"),
                "latency_p50_seconds": pct.get("50"),
                "latency_p99_seconds": pct.get("99"),
                "latency_max_seconds": lat.get("slowest"),
                "html_report": str((load_dir / "report.html").resolve()),
            },
            "members": members,
            "leader_changes": max((float(end[n].leader_changes) for n in end), default=0.0),
            "alerts": sorted(
                alerts.values(),
                key=lambda a: (a["fired_at_seconds"] is None, a["fired_at_seconds"] or 0),
            ),
            "timeline": [e.to_json() for e in self.timeline.events()],
        }


def link_page(page: Path, href: str, text: str) -> None:
    """Add a link at the top of an HTML report's body (the load report -> the dashboards)."""
    content = page.read_text(encoding="utf-8")
    link = f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>'
    if link in content or "<body>" not in content:
        return
    page.write_text(content.replace("<body>", "<body>" + link, 1), encoding="utf-8")


def render(report: dict[str, Any], out: Console) -> None:
    """The human-readable report (the JSON file holds the same figures)."""
    load, fault, cl = report["load"], report["fault"], report["cluster"]
    out.rule("raftmon demo report")
    rps = load.get("requests_per_second")
    out.print(
        f"Throughput   {rps:.0f} writes/s ({load.get('succeeded')} ok, "
        f"{load.get('failed')} failed, "
        f"{load.get('duration_seconds') or 0:.1f} s)"
        if rps is not None
        else "Throughput   - (no load report)"
    )
    out.print(
        f"Latency      p50 {_ms(load.get('latency_p50_seconds'))}, "
        f"p99 {_ms(load.get('latency_p99_seconds'))}, "
        f"max {_ms(load.get('latency_max_seconds'))}"
    )
    out.print(f"Leader       {cl['leader']} (leader changes: {report['leader_changes']:.0f})")
    out.print(
        f"Fault        slow disk: +{fault['wal_fsync_delay_seconds'] * 1000:.0f} ms fsync "
        f"on {fault['member']} "
        f"after {fault['injected_after_seconds']:.0f} s"
    )
    table = Table(title="members (fsync from /metrics: average / p99)")
    for col in (
        "member",
        "fsync before fault",
        "fsync after fault",
        "proposals c/a/f",
        "leader chg",
    ):
        table.add_column(col, justify="left" if col == "member" else "right")
    for m in report["members"]:
        pre, post = m["fsync_before_fault"], m["fsync_after_fault"]
        tags = (" leader" if m["leader"] else "") + (" SLOW" if m["slow_disk"] else "")
        table.add_row(
            m["name"] + tags,
            f"{_ms(pre['mean_seconds'])} / {_ms(pre['p99_seconds'])}",
            f"{_ms(post['mean_seconds'])} / {_ms(post['p99_seconds'])}",
            f"{m['proposals_committed']:.0f}/{m['proposals_applied']:.0f}/{m['proposals_failed']:.0f}",
            f"{m['leader_changes_seen']:.0f}",
        )
    out.print(table)
    mon = report["monitoring"]
    if mon["missing"]:
        out.print(f"Alerts       not evaluated: missing {', '.join(mon['missing'])}")
    elif not report["alerts"]:
        out.print("Alerts       none fired")
    else:
        alerts = Table(title="alerts (lab rules: production thresholds, windows in seconds)")
        for col in ("alert", "severity", "member", "fired at", "receiver"):
            alerts.add_column(col)
        for a in report["alerts"]:
            fired = f"{a['fired_at_seconds']:.0f} s" if a["fired_at_seconds"] is not None else "-"
            receivers = ", ".join(a["receivers"]) or (
                "none (info)" if a["severity"] == "info" else "not yet"
            )
            alerts.add_row(a["alertname"], a["severity"], a["instance"] or "-", fired, receivers)
        out.print(alerts)
    out.print(f"Load report  {load['html_report']}")
    dashboards = report.get("dashboards_html")
    out.print(
        f"Dashboards   {dashboards}"
        if dashboards
        else "Dashboards   not drawn (they need Prometheus: `make tools`)"
    )
    out.print(f"JSON report  {report.get('json_path', '-')}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raftmon demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    add_data_dir(p, "var/demo", "everything the demo writes (var/demo)")
    p.add_argument(
        "--json", type=Path, default=None, help="report JSON (default <data-dir>/report.json)"
    )
    p.add_argument(
        "--fault-delay", type=float, default=0.030, help="extra seconds per WAL fsync (0.03)"
    )
    p.add_argument(
        "--fault-at", type=float, default=0.5, help="when to inject, as a share of --duration (0.5)"
    )
    p.add_argument(
        "--fault-member", default="leader", help="member with the slow disk (default: the leader)"
    )
    p.add_argument("--clients", type=int, default=16, help="load generator clients (16)")
    p.add_argument("--conns", type=int, default=4, help="load generator connections (4)")
    p.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="max seconds to wait for the alert after the load (20)",
    )
    add_run_flags(
        p,
        tls_help="run the cluster on https with client and peer certificates (raftmon cluster "
        "--tls); load, faults and Prometheus use the generated CA and client certificate",
        quiet_help="no live timeline",
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    out = Console(highlight=False, soft_wrap=True)
    demo = Demo(args, out)
    out.print(f"raftmon demo: data in {args.data_dir}/ — Ctrl-C stops everything")
    # Ctrl-C and SIGTERM both unwind through `finally`, which stops every child.
    with interrupt_on_signals():
        try:
            report = demo.run()
        except KeyboardInterrupt:
            out.print("\nraftmon demo: interrupted; stopping everything it started")
            return 130
        except Exception as exc:
            log.exception("demo failed")
            out.print(f"[red]raftmon demo failed:[/] {exc}")
            if demo.cluster is not None:
                out.print(demo.cluster.logs_tail(10))
            return 1
        finally:
            demo.stop()
    json_path = args.json or args.data_dir / "report.json"
    report["json_path"] = str(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    render(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
