"""`raftmon demo`, shortened: the report's key lines and its JSON file; and the fallback
without Prometheus/Alertmanager. Values and events only (the injected 30 ms sits inside
the timed fsync section, so the slow member's average cannot be below it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab import demo, prom
from tests.helpers import require_tool

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.tools
# The TLS demo (33 s) runs in make test-long: make test's lab session already drives a
# scenario and its control over mTLS with Prometheus scraping them (tests/lab/test_tls.py).
@pytest.mark.parametrize(
    "tls", [pytest.param(False, id="http"), pytest.param(True, id="tls", marks=pytest.mark.slow)]
)
def test_demo_reports_load_fsync_and_the_routed_alert(tmp_path: Path, tls: bool) -> None:
    """`--tls`: members on https with mTLS; load, faults and Prometheus use the certificates."""
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    data = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "demo",
            "--duration=8",
            "--settle=40",
            f"--data-dir={data}",
            "--quiet",
            *(["--tls"] if tls else []),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for line in (
        "raftmon demo report",
        "Throughput",
        "Latency",
        "Leader",
        "Fault",
        "Load report",
        "etcdWALFsyncSlow",
    ):
        assert line in out, out
    report = json.loads((data / "report.json").read_text())
    assert report["load"]["succeeded"] > 0
    scheme = "https://" if tls else "http://"
    assert all(url.startswith(scheme) for url in report["cluster"]["endpoints"])
    assert Path(report["load"]["html_report"]).exists()
    dashboards = Path(report["dashboards_html"])
    assert f"Dashboards   {dashboards}" in out, out
    page = dashboards.read_text()
    for board in ("Cluster overview", "Disk", "Network", "Load test"):
        assert f"raftmon / {board}" in page, board
    slow = [m for m in report["members"] if m["slow_disk"]]
    assert len(slow) == 1
    assert len(report["members"]) == 3
    assert slow[0]["fsync_after_fault"]["mean_seconds"] >= 0.030
    assert all(m["proposals_committed"] > 0 for m in report["members"])
    routed = {(a["alertname"], r) for a in report["alerts"] for r in a["receivers"]}
    assert ("etcdWALFsyncSlow", "ticket") in routed, out


def test_demo_without_prometheus_says_so_and_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(prom, "find_tool", lambda name: None)
    data = tmp_path / "demo"
    rc = demo.main(["--duration=3", "--settle=0", f"--data-dir={data}", "--quiet", "--clients=4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "missing: prometheus, prometheus-alertmanager" in out
    assert "Alerts       not evaluated" in out
    report = json.loads((data / "report.json").read_text())
    assert report["load"]["succeeded"] > 0
    assert report["monitoring"]["prometheus"] is None
