"""Membership's rules, as etcd's membership.RaftCluster applies and checks them."""

from __future__ import annotations

import pytest

from node import errors as E
from node.mvcc.members import MemberRecord
from node.raft import ConfChange, ConfChangeType
from node.server.membership import ChangeContext, Membership
from node.server.reconfig import check_peer_urls

CCT = ConfChangeType


def started(member_id: int, url: str, *, learner: bool = False) -> MemberRecord:
    return MemberRecord(member_id, f"m{member_id}", (url,), (f"{url}9",), learner)


def three() -> Membership:
    return Membership([started(i, f"http://127.0.0.1:{2380 + i}") for i in (1, 2, 3)])


def add(m: Membership, member_id: int, url: str, learner: bool = False) -> E.EtcdError | None:
    kind = CCT.ConfChangeAddLearnerNode if learner else CCT.ConfChangeAddNode
    record = MemberRecord(member_id, peer_urls=(url,))
    cc, ctx = ConfChange(kind, member_id), ChangeContext(record)
    refused = m.validate(cc, ctx)
    if refused is None:
        m.apply(cc, ctx)
    return refused


def test_add_learner_then_promote() -> None:
    m = three()
    assert add(m, 4, "http://127.0.0.1:2390", learner=True) is None
    assert m.conf_state().learners == (4,)
    assert m.get(4) == MemberRecord(4, "", ("http://127.0.0.1:2390",), (), True)
    promote = ConfChange(CCT.ConfChangeAddNode, 4)
    ctx = ChangeContext(m.get(4) or MemberRecord(4), is_promote=True)
    assert m.validate(promote, ctx) is None
    m.apply(promote, ctx)
    assert m.conf_state().voters == (1, 2, 3, 4)
    assert m.conf_state().learners == ()


def test_refusals_with_etcds_errors() -> None:
    m = three()
    assert isinstance(add(m, 1, "http://127.0.0.1:2399"), E.ErrMemberExist)
    assert isinstance(add(m, 9, "http://127.0.0.1:2381"), E.ErrPeerURLExist)
    assert add(m, 4, "http://127.0.0.1:2390", learner=True) is None
    assert isinstance(add(m, 5, "http://127.0.0.1:2391", learner=True), E.ErrTooManyLearners)
    promote_voter = ConfChange(CCT.ConfChangeAddNode, 2)
    voter_ctx = ChangeContext(m.get(2) or MemberRecord(2), is_promote=True)
    assert isinstance(m.validate(promote_voter, voter_ctx), E.ErrMemberNotLearner)
    remove_unknown = ConfChange(CCT.ConfChangeRemoveNode, 77)
    assert isinstance(
        m.validate(remove_unknown, ChangeContext(MemberRecord(77))), E.ErrMemberNotFound
    )
    update = ConfChange(CCT.ConfChangeUpdateNode, 2)
    taken = ChangeContext(MemberRecord(2, peer_urls=("http://127.0.0.1:2383",)))
    assert isinstance(m.validate(update, taken), E.ErrPeerURLExist)


def test_a_removed_id_never_comes_back() -> None:
    m = three()
    remove = ConfChange(CCT.ConfChangeRemoveNode, 3)
    m.apply(remove, ChangeContext(MemberRecord(3)))
    assert m.conf_state().voters == (1, 2)
    assert isinstance(add(m, 3, "http://127.0.0.1:2393"), E.ErrMemberNotFound)


def test_update_keeps_name_and_role() -> None:
    m = three()
    update = ConfChange(CCT.ConfChangeUpdateNode, 2)
    m.apply(update, ChangeContext(MemberRecord(2, peer_urls=("http://127.0.0.1:2500",))))
    assert m.get(2) == MemberRecord(
        2, "m2", ("http://127.0.0.1:2500",), ("http://127.0.0.1:23829",)
    )


def test_strict_reconfig_quorum_rules() -> None:
    m = three()
    assert m.ready_to_add_voter()  # 3 started of 4 voters: quorum 3
    assert m.ready_to_remove_voter(3)
    assert add(m, 4, "http://127.0.0.1:2390") is None  # added, never started
    assert m.ready_to_add_voter()  # 3 started of 5: quorum 3
    assert m.ready_to_remove_voter(1)  # 2 started of 3: quorum 2
    assert add(m, 5, "http://127.0.0.1:2391") is None
    assert not m.ready_to_add_voter()  # 3 started of 6: quorum 4
    assert not m.ready_to_remove_voter(1)  # 2 started of 4: quorum 3


def test_one_member_may_always_grow_to_two() -> None:
    m = Membership([started(1, "http://127.0.0.1:2381")])
    assert m.ready_to_add_voter()


def test_change_context_round_trip() -> None:
    ctx = ChangeContext(MemberRecord(0xABC, "n", ("http://a:1",), ("http://a:2",), True), True)
    assert ChangeContext.decode(0xABC, ctx.encode()) == ctx
    assert ChangeContext.decode(7, b"") == ChangeContext(MemberRecord(7))


@pytest.mark.parametrize(
    "urls",
    [[], ["127.0.0.1:2380"], ["ftp://127.0.0.1:2380"], ["http://127.0.0.1"], ["http://h:1/path"]],
)
def test_bad_peer_urls(urls: list[str]) -> None:
    with pytest.raises(E.ErrMemberBadURLs):
        check_peer_urls(urls)
