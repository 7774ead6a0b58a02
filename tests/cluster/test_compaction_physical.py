"""A compaction's rows go in the background; `physical` answers only once they are gone."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import call, put, revision

pytestmark = pytest.mark.cluster

KEYS_REMOVED = "etcd_debugging_mvcc_db_compaction_keys_total"


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def test_a_physical_compaction_answers_after_the_old_revisions_are_deleted(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(1)
    m = cluster.members[0]
    for i in range(1500):  # 3 revisions of 500 keys: 1000 condemned, over a batch's 1000
        assert "error" not in put(m.client_url, f"phys/{i % 500:03d}", str(i))
    rev = revision(m.client_url)
    resp = call(m.client_url, "/v3/kv/compaction", {"revision": str(rev), "physical": True})
    assert "error" not in resp, resp
    assert _metric(m.metrics_url, KEYS_REMOVED) == 1000
