"""Each of etcd's error values answers etcd's gRPC code, HTTP status and body."""

from __future__ import annotations

import json

import pytest

from node import errors as E
from node.api.errors import CODES, NOT_FOUND_PATH, GrpcCode, status

# (value, gRPC code, HTTP status): etcd 3.4's togRPCError through grpc-gateway v1.
EXPECTED = [
    (E.ErrNoLeader(), GrpcCode.UNAVAILABLE, 503),
    (E.ErrTimeout(), GrpcCode.UNAVAILABLE, 503),
    (E.ErrTimeoutDueToLeaderFail(), GrpcCode.UNAVAILABLE, 503),
    (E.ErrRequestTooLarge(), GrpcCode.INVALID_ARGUMENT, 400),
    (E.ErrBadLeaderTransferee(), GrpcCode.FAILED_PRECONDITION, 412),
    (E.ErrStopped(), GrpcCode.UNAVAILABLE, 503),
    (E.ErrStoreClosed(), GrpcCode.UNAVAILABLE, 503),
    (E.ErrInvalidRequest("unexpected EOF"), GrpcCode.INVALID_ARGUMENT, 400),
    (E.ErrMessageTooLarge(10, 5), GrpcCode.RESOURCE_EXHAUSTED, 429),
    (E.ErrUnimplemented("HashKV is not supported by raftmon"), GrpcCode.UNIMPLEMENTED, 501),
    (E.ErrCompacted(), GrpcCode.OUT_OF_RANGE, 400),
    (E.ErrKeyNotFound(), GrpcCode.INVALID_ARGUMENT, 400),
    (E.ErrLeaseNotFound(), GrpcCode.NOT_FOUND, 404),
    (E.ErrNotLeader(), GrpcCode.FAILED_PRECONDITION, 412),
    (E.ErrNoSpace(), GrpcCode.RESOURCE_EXHAUSTED, 429),
    (E.ErrCorrupt(), GrpcCode.DATA_LOSS, 500),
    (E.ErrApplyFailed(f"{E.ErrApplyFailed.message}: KeyError: 1"), GrpcCode.INTERNAL, 500),
    (E.ErrBackendDamaged(), GrpcCode.UNAVAILABLE, 503),
    (E.EtcdError("something no class names"), GrpcCode.UNKNOWN, 500),
    (RuntimeError("a bug"), GrpcCode.UNKNOWN, 500),
]


@pytest.mark.parametrize(("err", "code", "http"), EXPECTED, ids=lambda v: type(v).__name__)
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
