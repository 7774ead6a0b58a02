"""Seeded mutations of valid requests, sent to one raftmon member and one real etcd 3.4.

For every case: the same status class as etcd (or an entry of tests/fuzz/accepted.py
saying why not), no raftmon 5xx that etcd does not answer too, and nothing changed by
a request raftmon refused; after all of them the member is alive and serving.

    RAFTMON_FUZZ_COUNT=2000 pytest tests/fuzz --seed 7   # a longer run by hand

A failure prints the seed, each failing request and both answers, and the replay line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from tests.fuzz.harness import fingerprint, run

pytestmark = pytest.mark.cluster

DEFAULT_SEED = 18
DEFAULT_COUNT = 300  # well under a minute against both servers


def test_mutated_requests_get_etcds_status_class_and_change_nothing_when_refused(
    request: pytest.FixtureRequest, raftmon1: LocalCluster, etcd1: EtcdCluster, tmp_path: Path
) -> None:
    seed = request.config.getoption("--seed")
    seed = DEFAULT_SEED if seed is None else int(seed)
    count = int(os.environ.get("RAFTMON_FUZZ_COUNT", DEFAULT_COUNT))
    member = raftmon1.members[0]
    etcd = etcd1.members[0]

    def restart_etcd() -> None:
        etcd1.restart(etcd.name)

    report = run(
        member.client_url,
        etcd.client_url,
        seed,
        count,
        etcd_alive=lambda: etcd.alive,
        restart_etcd=restart_etcd,
        log=lambda line: None,
    )
    print(report.summary())
    assert member.alive, f"the raftmon member died\n{raftmon1.logs_tail(40)}"
    fingerprint(member.client_url)  # still answers
    replay = f"replay: pytest tests/fuzz --seed {seed}  (RAFTMON_FUZZ_COUNT={count})"
    assert not report.failures, "\n".join([report.summary(), *report.failures, replay])
