"""Micro-benchmark: proposals per second through a 3-member in-memory cluster (make bench)."""

from __future__ import annotations

import random
import time

import pytest

from node.raft import Config, MemoryStorage, RawNode, StateType


@pytest.mark.bench
def test_bench_core_proposals_per_second() -> None:
    ids = (1, 2, 3)
    stores = {i: MemoryStorage() for i in ids}
    nodes = {i: RawNode(Config(id=i, peers=ids, rng=random.Random(i)), stores[i]) for i in ids}
    applied = dict.fromkeys(ids, 0)

    def pump() -> None:
        moved = True
        while moved:
            moved = False
            for i in ids:
                n = nodes[i]
                if not n.has_ready():
                    continue
                moved = True
                rd = n.ready()
                st = stores[i]
                st.append(rd.entries)
                if rd.hard_state is not None:
                    st.set_hard_state(rd.hard_state)
                applied[i] += len(rd.committed_entries)
                out = rd.messages + [m for m in rd.messages_after_persist if m.to != i]
                n.advance(rd)
                for m in out:
                    nodes[m.to].step(m)

    nodes[1].campaign()
    pump()
    assert nodes[1].status().role == StateType.StateLeader
    batch = 64  # the driver proposes whatever arrived during one loop iteration
    total = 1000 * batch
    payload = b"k" * 100
    start = time.perf_counter()
    for _ in range(total // batch):
        for _ in range(batch):
            nodes[1].propose(payload)
        pump()
    elapsed = time.perf_counter() - start
    assert nodes[1].status().commit == nodes[3].status().applied == total + 1
    rate = total / elapsed
    print(f"\nraft core: {rate:,.0f} proposals/s through 3 in-memory members (batch {batch})")
    # Every member's core runs in this one process here; a real member runs one core.
    assert rate > 0
