"""The lab's pieces without a cluster: bucket maths, write windows, the webhook receiver,
the Alertmanager config it renders, the Prometheus config it writes and the dashboard
queries it reads."""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import pytest
import yaml

from alerts.render import LAB_WEBHOOK_PLACEHOLDER
from lab import panels
from lab.memberstats import MemberSnapshot, fsync_between, quantile
from lab.prom import (
    LOADGEN_JOB,
    Member,
    Prometheus,
    alertmanager_config,
    lab_alert_for_seconds,
    rule_files,
)
from lab.scenarios import MEMBERSHIP_ALERTS, all_runs
from lab.webhook import WebhookReceiver
from lab.writer import Window, Writer, WriteRecord


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = {0.001: 0.0, 0.002: 50.0, 0.004: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == 0.002
    assert quantile(0.99, buckets) == 0.002 + 0.002 * (99 - 50) / 50
    assert quantile(0.99, {0.001: 0.0, math.inf: 0.0}) is None


def test_fsync_between_uses_only_the_stretch_between_snapshots() -> None:
    # Cumulative counters, as scraped: 100 fsyncs all under 32 ms, then 100 more in (32, 64].
    def scraped(total: float, count: int, le_32ms: int) -> MemberSnapshot:
        buckets: dict[float, float] = {0.032: le_32ms, 0.064: count, math.inf: count}
        return MemberSnapshot("m1", True, fsync_sum=total, fsync_count=count, fsync_buckets=buckets)

    a = scraped(1.0, 100, 100)
    b = scraped(4.1, 200, 100)
    stats = fsync_between(a, b)
    assert stats.count == 100
    assert stats.mean is not None
    assert abs(stats.mean - 0.031) < 1e-9
    assert stats.p99 is not None
    assert 0.032 < stats.p99 <= 0.064
    assert fsync_between(a, MemberSnapshot("m1", False)).mean is None


def test_writer_window_counts_rates_and_errors_by_message() -> None:
    w = Writer(["http://127.0.0.1:1"])
    rows = [WriteRecord(10.0 + i * 0.1, 0.01 * (i + 1), "e", f"k{i}", "v", True) for i in range(10)]
    rows += [WriteRecord(10.5, 1.0, "e", "x", "v", False, "etcdserver: no leader")]
    w._records.extend(rows)
    win: Window = w.window(10.0, 11.0)
    assert (win.ok, win.failed) == (10, 1)
    assert win.errors == {"etcdserver: no leader": 1}
    assert win.rate == 10.0
    assert win.p50 in (0.05, 0.06)
    assert w.acknowledged() == {f"k{i}": "v" for i in range(10)}


def test_webhook_receiver_records_each_alert_with_its_receiver() -> None:
    payload = {
        "receiver": "ticket",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "etcdWALFsyncSlow",
                    "cluster": "c1",
                    "instance": "m1",
                    "severity": "warning",
                },
            },
            {
                "status": "resolved",
                "labels": {"alertname": "etcdMembersDown", "cluster": "c2", "severity": "warning"},
            },
        ],
    }
    with WebhookReceiver() as hook:
        req = urllib.request.Request(
            hook.url + "/ticket", data=json.dumps(payload).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        rows = hook.notifications("c1")
    assert [(r.receiver, r.status, r.alertname, r.instance) for r in rows] == [
        ("ticket", "firing", "etcdWALFsyncSlow", "m1")
    ]
    assert len(hook.notifications()) == 2


def test_alertmanager_config_points_pages_and_tickets_at_the_local_receiver() -> None:
    text = alertmanager_config("http://127.0.0.1:5001")
    assert LAB_WEBHOOK_PLACEHOLDER not in text
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    assert receivers["page"]["webhook_configs"][0]["url"] == "http://127.0.0.1:5001/page"
    assert receivers["ticket"]["webhook_configs"][0]["url"] == "http://127.0.0.1:5001/ticket"
    assert "webhook_configs" not in receivers["null"]


def test_prometheus_config_scrapes_every_second_with_the_chosen_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prom = Prometheus("/bin/true", Path("p"), lab=True, alertmanager="127.0.0.1:9")
    tmp_path = tmp_path / "p"
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    # Absolute: Prometheus resolves relative file_sd paths against the config's folder.
    assert Path(config["scrape_configs"][0]["file_sd_configs"][0]["files"][0]).is_absolute()
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"] == [str(p) for p in rule_files(lab=True)]
    assert all(Path(p).exists() for p in config["rule_files"])
    assert config["scrape_configs"][0]["job_name"] == "etcd"  # the mixin selects job=~".*etcd.*"
    prom.set_targets("c1", [])
    assert json.loads((tmp_path / "targets" / "c1.json").read_text()) == []
    prom.remove_targets("c1")
    assert not (tmp_path / "targets" / "c1.json").exists()


def test_prometheus_scrapes_load_generators_as_their_own_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prom = Prometheus("/bin/true", Path("p"), lab=True)
    config = yaml.safe_load((tmp_path / "p" / "prometheus.yml").read_text())
    jobs = {c["job_name"]: c["file_sd_configs"][0]["files"][0] for c in config["scrape_configs"]}
    # The load-test board selects job=~".*loadgen.*"; the mixin's job=~".*etcd.*" must not.
    assert set(jobs) == {"etcd", LOADGEN_JOB}
    assert jobs[LOADGEN_JOB] == str(tmp_path / "p" / "targets" / LOADGEN_JOB / "*.json")
    prom.set_targets("c1", [Member("load-0", "127.0.0.1:9")], job=LOADGEN_JOB)
    path = tmp_path / "p" / "targets" / LOADGEN_JOB / "c1.json"
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:9"], "labels": {"cluster": "c1", "instance": "load-0"}}
    ]
    assert not (tmp_path / "p" / "targets" / "c1.json").exists()
    prom.remove_targets("c1")
    assert not path.exists()


def test_prometheus_scrapes_tls_members_with_tls_config_and_https_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tls = {"ca_file": "/x/ca.crt", "cert_file": "/x/client.crt", "key_file": "/x/client.key"}
    prom = Prometheus("/bin/true", Path("p"), lab=True, tls_config=tls)
    config = yaml.safe_load((tmp_path / "p" / "prometheus.yml").read_text())
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert jobs["etcd"]["tls_config"] == tls
    assert "tls_config" not in jobs[LOADGEN_JOB]  # the load generator serves plain http
    prom.set_targets("c1", [Member("m1", "127.0.0.1:9")], scheme="https")
    assert json.loads((tmp_path / "p" / "targets" / "c1.json").read_text()) == [
        {
            "targets": ["127.0.0.1:9"],
            "labels": {"cluster": "c1", "__scheme__": "https", "instance": "m1"},
        }
    ]


def test_panels_fill_grafana_variables_for_a_lab_run() -> None:
    (query,) = panels.panel_queries("raftmon-overview", "Which alerts are firing?")
    assert panels.substitute(query.expr, cluster="quota") == (
        'ALERTS{alertstate="firing", cluster=~"quota"}'
    )
    expr = 'rate(a{cluster=~"$cluster", instance=~"${instance}"}[$__rate_interval])'
    assert panels.substitute(expr, cluster="c") == 'rate(a{cluster=~"c", instance=~".*"}[15s])'
    with pytest.raises(panels.UnknownVariable):
        panels.substitute("a[$__range]", cluster="c")
    with pytest.raises(KeyError):
        panels.panel_queries("raftmon-overview", "no such panel")


def test_every_lab_dashboard_ref_names_a_real_board_item() -> None:
    refs = {ref for spec in all_runs() for ref in spec.dashboards}
    assert refs
    for ref in refs:
        assert ref.queries(), ref
        assert all(panels.substitute(q.expr, cluster="c") for q in ref.queries())
    # An annotation covers every board that carries it.
    fsync = panels.annotation("Fault: WAL fsync delay injected").keys()
    assert {board for board, _ in fsync} >= {"raftmon-overview", "raftmon-disk"}


def test_control_runs_read_each_alerts_lab_for_from_the_rendered_rules() -> None:
    """A control's silence is bounded by the `for` of the alerts it watches, read from
    alerts/out/lab: every alert a control names is there, with the lab's own `for`."""
    fors = lab_alert_for_seconds()
    for alert in [*MEMBERSHIP_ALERTS, "etcdLeaderChangesTooFrequent", "etcdWALFsyncSlow"]:
        assert alert in fors, alert
    assert fors["etcdMembersDown"] == 15.0
    assert fors["etcdEvenNumberOfMembers"] == 20.0
    assert fors["etcdNoSpaceAlarm"] == 0.0
    assert max(fors.values()) <= 30.0  # the lab compresses production's minutes to seconds
