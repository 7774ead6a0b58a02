"""Each of etcd's error values answers etcd's gRPC code, HTTP status and body."""

from __future__ import annotations

import json

import pytest

from node import errors as E
from node.api.errors import CODES, NOT_FOUND_PATH, GrpcCode, status

# etcd 3.4's togRPCError through grpc-gateway v1: (gRPC code, HTTP status) -> values.
EXPECTED: dict[tuple[GrpcCode, int], list[BaseException]] = {
    (GrpcCode.UNAVAILABLE, 503): [
        E.ErrNoLeader(),
        E.ErrTimeout(),
        E.ErrTimeoutDueToLeaderFail(),
        E.ErrStopped(),
        E.ErrStoreClosed(),
        E.ErrBackendDamaged(),
    ],
    (GrpcCode.INVALID_ARGUMENT, 400): [
        E.ErrRequestTooLarge(),
        E.ErrInvalidRequest("unexpected EOF"),
        E.ErrKeyNotFound(),
    ],
    (GrpcCode.FAILED_PRECONDITION, 412): [E.ErrBadLeaderTransferee(), E.ErrNotLeader()],
    (GrpcCode.RESOURCE_EXHAUSTED, 429): [E.ErrMessageTooLarge(10, 5), E.ErrNoSpace()],
    (GrpcCode.UNIMPLEMENTED, 501): [E.ErrUnimplemented("HashKV is not supported by raftmon")],
    (GrpcCode.OUT_OF_RANGE, 400): [E.ErrCompacted()],
    (GrpcCode.NOT_FOUND, 404): [E.ErrLeaseNotFound()],
    (GrpcCode.DATA_LOSS, 500): [E.ErrCorrupt()],
    (GrpcCode.INTERNAL, 500): [E.ErrApplyFailed(f"{E.ErrApplyFailed.message}: KeyError: 1")],
    (GrpcCode.UNKNOWN, 500): [E.EtcdError("something no class names"), RuntimeError("a bug")],
}
CASES = [(err, code, http) for (code, http), errs in EXPECTED.items() for err in errs]


@pytest.mark.parametrize(("err", "code", "http"), CASES, ids=lambda v: type(v).__name__)
def test_each_error_value_has_etcds_code_and_status(
    err: BaseException, code: GrpcCode, http: int
) -> None:
    st = status(err)
    assert (st.code, st.http_status, st.message) == (code, http, str(err))
    assert json.loads(st.body()) == {"error": str(err), "message": str(err), "code": int(code)}


def test_every_error_value_with_a_fixed_text_is_in_the_table() -> None:
    for message, cls in E._BY_MESSAGE.items():
        assert status(cls()).code != GrpcCode.UNKNOWN, message
    assert all(issubclass(cls, E.EtcdError) for cls in CODES)


def test_a_plain_exception_with_etcds_text_answers_as_that_error() -> None:
    assert status(Exception(E.NO_LEADER)) == status(E.ErrNoLeader())


def test_text_read_back_from_another_member_recovers_the_value() -> None:
    assert E.etcd_error(E.REQUEST_TIMEOUT) == E.ErrTimeout()
    assert E.etcd_error(E.STOPPED) == E.ErrStopped()
    assert type(E.etcd_error("no such text")) is E.EtcdError


def test_both_of_etcds_timeouts_are_unavailable() -> None:
    assert status(E.etcd_error(E.REQUEST_TIMEOUT)).code == GrpcCode.UNAVAILABLE
    assert status(E.etcd_error(E.TIMEOUT_LEADER_FAIL)).code == GrpcCode.UNAVAILABLE


def test_code_names_are_go_grpc_prometheus_labels() -> None:
    assert GrpcCode.OK.title == "OK"
    assert GrpcCode.INVALID_ARGUMENT.title == "InvalidArgument"
    assert GrpcCode.DATA_LOSS.title == "DataLoss"
    assert NOT_FOUND_PATH.http_status == 404
