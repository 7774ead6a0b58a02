"""Prometheus and Alertmanager for the lab, with our rules and routing, on free loopback ports.

`LabStack` is the monitoring half of every lab run: the webhook receiver, Alertmanager
routing to it (pages to /page, tickets to /ticket, info nowhere) and Prometheus scraping
every second with the mixin's rules. Clusters join and leave at run time through
file-based service discovery (`register(cluster, members)`): one stack can watch several
clusters at once, told apart by their `cluster` label, which is how the tests run
independent scenarios side by side. A second job, `loadgen`, scrapes `raftmon load
--metrics-port` processes a run registers under its cluster label (the load-test board's
client-side panels read them).

Rules: `lab=True` loads alerts/out/lab (windows and `for` in seconds; every latency,
ratio and count threshold is the production one), `lab=False` the normal alerts/out.
"""

from __future__ import annotations

import json
import logging
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.render import LAB_WEBHOOK_PLACEHOLDER, OUT_DIR
from lab.procs import (
    ManagedProcess,
    Running,
    WaitTimeout,
    free_ports,
    http_get,
    http_json,
    wait_until,
)
from lab.webhook import WebhookReceiver

log = logging.getLogger(__name__)

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
# Debian package that ships each tool (what `make tools` installs).
PACKAGES = {PROMETHEUS: "prometheus", ALERTMANAGER: "prometheus-alertmanager"}
JOB = "etcd"  # the mixin's selector is job=~".*etcd.*"
# The load generator's own metrics (raftmon_loadgen_*): the load-test board selects
# job=~".*loadgen.*", and the mixin's etcd selector must not match it.
LOADGEN_JOB = "loadgen"
JOBS = (JOB, LOADGEN_JOB)


def find_tool(name: str) -> str | None:
    return shutil.which(name)


def missing_tools() -> list[str]:
    """Monitoring tools the lab needs that are not installed (names of the commands)."""
    return [name for name in (PROMETHEUS, ALERTMANAGER) if find_tool(name) is None]


def rule_files(lab: bool) -> list[Path]:
    base = OUT_DIR / "lab" if lab else OUT_DIR
    return [base / "prometheus_rules.yaml", base / "prometheus_alerts.yaml"]


def _seconds(duration: str) -> float:
    """A Prometheus duration as the lab writes them (`15s`, `2m`, `1h`, `0s`) in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"not a lab duration: {duration!r}")


def lab_alert_for_seconds() -> dict[str, float]:
    """Each lab alert's `for`, in seconds (the longest one, when a name has several).

    A control run reads these to know how long a pending alert can stay pending before it
    fires: the longest `for` among the alerts it expects silent bounds its wait.
    """
    doc = yaml.safe_load(rule_files(lab=True)[1].read_text())
    longest: dict[str, float] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                name = rule["alert"]
                longest[name] = max(longest.get(name, 0.0), _seconds(rule.get("for", "0s")))
    return longest


def alertmanager_config(webhook_url: str) -> str:
    """Our routing (alerts/out/lab/alertmanager.yml) with the placeholder pointed at `url`.

    The routing tree, receivers and inhibitions are the production ones; only group_wait
    (1 s) and group_interval (5 s) are shorter, so a notification leaves within seconds.
    """
    text = (OUT_DIR / "lab" / "alertmanager.yml").read_text(encoding="utf-8")
    return text.replace(LAB_WEBHOOK_PLACEHOLDER, webhook_url.rstrip("/"))


@dataclass
class Member:
    """A scrape target: member name and `host:port` of its /metrics."""

    name: str
    target: str


class _ReadyServer:
    """A Prometheus-family server on a free loopback port, ready when /-/ready answers."""

    name = ""
    process: ManagedProcess

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).resolve()  # the tools resolve relative paths their way
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        wait_until(
            f"{self.name} ready",
            lambda: self.process.alive and http_get(self.url + "/-/ready"),
            timeout,
            detail=self.process.tail,
        )

    def stop(self) -> None:
        self.process.stop()


class Alertmanager(_ReadyServer):
    """Debian's Alertmanager, no HA gossip, our routing."""

    name = "alertmanager"

    def __init__(self, binary: str, base_dir: Path, webhook_url: str) -> None:
        super().__init__(base_dir)
        base_dir = self.base_dir
        config = base_dir / "alertmanager.yml"
        config.write_text(alertmanager_config(webhook_url), encoding="utf-8")
        self.process = ManagedProcess(
            "alertmanager",
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            base_dir / "alertmanager.log",
        )


class Prometheus(_ReadyServer):
    """Debian's Prometheus: 1 s scrape and evaluation, our rules, file-discovered targets."""

    name = "prometheus"

    def __init__(
        self,
        binary: str,
        base_dir: Path,
        *,
        lab: bool = True,
        alertmanager: str | None = None,
        scrape_interval: str = "1s",
        tls_config: dict[str, str] | None = None,
    ) -> None:
        # Absolute: Prometheus resolves file_sd paths against the config file's folder.
        super().__init__(base_dir)
        base_dir = self.base_dir
        self.targets_dir = base_dir / "targets"
        for job in JOBS:
            self._dir(job).mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(p) for p in rule_files(lab)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "file_sd_configs": [
                        {"files": [str(self._dir(job) / "*.json")], "refresh_interval": "1s"}
                    ],
                }
                for job in JOBS
            ],
        }
        if tls_config is not None:
            # Members of --tls clusters: the CA that signed them and a client certificate
            # (they require one). Their target groups carry __scheme__=https (set_targets);
            # plain-http members of the same job ignore the tls_config.
            config["scrape_configs"][0]["tls_config"] = dict(tls_config)
        if alertmanager is not None:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            }
        path = base_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Resolved alerts reach Alertmanager at once; repeats of firing ones every 5 s.
                "--rules.alert.resend-delay=5s",
                "--log.level=warn",
            ],
            base_dir / "prometheus.log",
        )

    # ---- targets --------------------------------------------------------------------------
    def _dir(self, job: str) -> Path:
        """targets/ for members, targets/<job>/ for any other job (the globs do not overlap)."""
        return self.targets_dir if job == JOB else self.targets_dir / job

    def set_targets(
        self, cluster: str, members: list[Member], job: str = JOB, scheme: str = "http"
    ) -> None:
        labels = {"cluster": cluster} | ({"__scheme__": scheme} if scheme != "http" else {})
        groups = [
            {"targets": [m.target], "labels": {**labels, "instance": m.name}} for m in members
        ]
        folder = self._dir(job)
        tmp = folder / f".{cluster}.json.tmp"
        tmp.write_text(json.dumps(groups), encoding="utf-8")
        tmp.replace(folder / f"{cluster}.json")  # atomic: never a half-read file

    def remove_targets(self, cluster: str) -> None:
        for job in JOBS:
            (self._dir(job) / f"{cluster}.json").unlink(missing_ok=True)

    # ---- API --------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = http_json(url, timeout=5.0)  # OSError when Prometheus cannot be reached
        if not isinstance(data, dict) or data.get("status") != "success":
            error = data.get("error") if isinstance(data, dict) else data
            raise ValueError(f"{path} {params}: {error}")
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def values(self, expr: str) -> dict[str, float]:
        """`instance -> value` of an instant query (the empty string for aggregated series)."""
        out: dict[str, float] = {}
        for series in self.query(expr):
            out[series["metric"].get("instance", "")] = float(series["value"][1])
        return out

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (Prometheus' own view, before Alertmanager)."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def label_values(self, label: str, match: str) -> list[str]:
        """Values of `label` on the series `match` selects (a Grafana variable's query)."""
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": match})
        return values

    def targets_summary(self) -> str:
        """One line per scrape target: job, URL, health, last error (for failure messages)."""
        active = self.api("targets")["activeTargets"]
        return "\n".join(
            f"{t['labels'].get('job')} {t['scrapeUrl']} {t['health']} {t['lastError']}"
            for t in active
        )


class LabStack(Running):
    """Webhook receiver + Alertmanager + Prometheus, started together, stopped in reverse."""

    def __init__(
        self,
        base_dir: Path,
        *,
        lab_rules: bool = True,
        tls_config: dict[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.lab_rules = lab_rules
        self.tls_config = tls_config  # Prometheus' tls_config for https members
        self.webhook = WebhookReceiver()
        self.alertmanager: Alertmanager | None = None
        self.prometheus: Prometheus | None = None
        self.missing = missing_tools()

    @property
    def monitoring(self) -> bool:
        """True when Prometheus and Alertmanager run (both tools installed)."""
        return self.prometheus is not None

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.webhook.start()
        if self.missing:
            log.warning("monitoring off: missing=%s", ",".join(self.missing))
            return
        try:
            am_bin, prom_bin = find_tool(ALERTMANAGER), find_tool(PROMETHEUS)
            assert am_bin is not None
            assert prom_bin is not None
            self.alertmanager = Alertmanager(
                am_bin, self.base_dir / "alertmanager", self.webhook.url
            )
            self.alertmanager.start()
            self.prometheus = Prometheus(
                prom_bin,
                self.base_dir / "prometheus",
                lab=self.lab_rules,
                alertmanager=f"127.0.0.1:{self.alertmanager.port}",
                tls_config=self.tls_config,
            )
            self.prometheus.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        self.webhook.stop()

    def register(
        self, cluster: str, members: list[Member], job: str = JOB, scheme: str = "http"
    ) -> None:
        if self.prometheus is not None:
            self.prometheus.set_targets(cluster, members, job, scheme)

    def unregister(self, cluster: str) -> None:
        if self.prometheus is not None:
            self.prometheus.remove_targets(cluster)

    def wait_scraped(self, cluster: str, count: int, timeout: float = 30.0, job: str = JOB) -> None:
        """Until Prometheus has scraped `count` targets of `cluster`'s `job` successfully."""
        prom = self.prometheus
        if prom is None:
            return

        def scraped() -> bool:
            try:
                up = prom.values(f'up{{job="{job}", cluster="{cluster}"}} == 1')
            except (OSError, ValueError):
                return False
            return len(up) >= count

        try:
            wait_until(
                f"prometheus scrapes cluster {cluster} job {job}", scraped, timeout, interval=0.3
            )
        except WaitTimeout as err:
            raise WaitTimeout(f"{err}\n{prom.process.tail()}") from None
