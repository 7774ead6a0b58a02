"""`raftmon lab --tls`: a scenario and its control on mTLS clusters, from the session's runs.

The same expectations as the plain runs (the alert fired and reached its receiver, the
control stayed silent, every check passed: writes, fault knobs on the metrics listener,
status polls and member ids all went through the run's client certificate), plus
Prometheus' own word that it scraped each member over https. The runs share the session
Prometheus with the plain ones (conftest.TLS_RUNS), so one tls_config reached them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.certs import make_authority
from lab.cluster import LocalCluster
from lab.runtime import RunResult
from lab.scenarios import SCENARIOS, lab_stack, with_tls
from tests.lab.conftest import TLS_RUNS, explain
from tests.lab.test_scenarios import ROUTED, SILENT, _routed

HTTPS_CHECK = "Prometheus scrapes all 3 members over https"


def test_with_tls_names_its_own_cluster_label() -> None:
    spec = SCENARIOS["slow-disk"].runs[0]
    tls = with_tls(spec)
    assert (tls.run, tls.tls, spec.tls) == ("slow-disk-tls", True, False)
    assert (tls.scenario, tls.body, tls.control) == (spec.scenario, spec.body, spec.control)


def test_one_authority_signs_every_cluster_and_feeds_prometheus(tmp_path: Path) -> None:
    """Two clusters of one lab invocation: same CA and client certificate, own member certs."""
    stack, authority = lab_stack(tmp_path, tls=True)
    assert authority is not None
    assert stack.tls_config == authority.prometheus_tls_config()
    assert Path(stack.tls_config["ca_file"]) == authority.ca.cert_file.resolve()
    a = LocalCluster(tmp_path / "a", 3, authority=authority)
    b = LocalCluster(tmp_path / "b", 3, authority=authority)
    assert a.certs is not None
    assert b.certs is not None
    assert a.certs.ca == b.certs.ca == authority.ca
    assert a.certs.client == b.certs.client == authority.client
    assert a.certs.members["m1"].cert_file != b.certs.members["m1"].cert_file
    assert all(url.startswith("https://") for url in [*a.endpoints, *b.endpoints])
    plain, none = lab_stack(tmp_path / "plain", tls=False)
    assert (plain.tls_config, none) == (None, None)


def test_a_cluster_without_an_authority_still_makes_its_own_ca(tmp_path: Path) -> None:
    own = LocalCluster(tmp_path / "own", 1, tls=True)
    other = make_authority(tmp_path / "other")
    assert own.certs is not None
    assert own.certs.ca.cert_file.parent == tmp_path / "own" / "tls"
    assert own.certs.ca.cert != other.ca.cert


def _base(run: str) -> str:
    return run.removesuffix("-tls")


@pytest.mark.cluster
@pytest.mark.tools
@pytest.mark.timeout(900)
@pytest.mark.parametrize("run", [s.run for s in TLS_RUNS])
def test_tls_run_meets_the_plain_runs_expectations_over_https(
    run: str, lab_results: dict[str, RunResult]
) -> None:
    result = lab_results[run]
    base = _base(run)
    for alert, receiver in ROUTED.get(base, []):
        assert _routed(result, alert, receiver), (
            f"{alert} never reached {receiver}\n{explain(result)}"
        )
    for alert in SILENT.get(base, []):
        assert not any(n.alertname == alert for n in result.notifications), explain(result)
        assert not any(
            e.kind == "firing" and e.data.get("alertname") == alert for e in result.events
        ), explain(result)
    assert base in ROUTED or base in SILENT
    assert any(c.ok and c.text.startswith(HTTPS_CHECK) for c in result.checks), explain(result)
    urls = result.measurements["scrape_urls"]
    assert len(urls) == 3
    assert all(u.startswith("https://127.0.0.1:") for u in urls), urls
    assert result.measurements["before"]["ok"] > 0, explain(result)  # the writer's mTLS puts
    assert result.ok, explain(result)
