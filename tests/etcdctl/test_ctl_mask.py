"""The etcdctl output mask: lease ids get placeholders, lease 0 ("no lease") never does."""

from __future__ import annotations

from tests.etcdctl.ctl import Placeholders


def test_a_granted_lease_is_masked_everywhere_it_appears() -> None:
    names = Placeholders()
    names.learn_leases("lease 694d7c1e1e3ac204 granted with TTL(60s)")
    assert names.replace("lease 694d7c1e1e3ac204 revoked") == "lease <lease1> revoked"


def test_lease_zero_is_not_learned_so_a_path_with_a_zero_stays() -> None:
    names = Placeholders()
    names.learn_leases('{"ID":0}\n0000000000000000')
    out = "Snapshot saved at /tmp/pytest-of-root/pytest-0/snapshot0/snap.db"
    assert names.replace(out) == out
