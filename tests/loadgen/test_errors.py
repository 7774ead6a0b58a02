"""Every failure maps to one error kind, from etcd's JSON bodies or from the socket."""

from __future__ import annotations

import aiohttp
import pytest

from loadgen import errors
from loadgen.errors import error_from_body, error_from_exception, error_from_stream_error


def body(message: str, code: int) -> bytes:
    return f'{{"error":"{message}","message":"{message}","code":{code}}}'.encode()


@pytest.mark.parametrize(
    ("status", "payload", "kind"),
    [
        (503, body("etcdserver: no leader", 14), errors.NO_LEADER),
        (503, body("etcdserver: leader changed", 14), errors.NO_LEADER),
        (503, body("etcdserver: request timed out", 14), errors.TIMEOUT),
        (400, body("etcdserver: request is too large", 3), errors.TOO_LARGE),
        (
            429,
            body("grpc: received message larger than max (2097162 vs. 2097152)", 8),
            errors.TOO_LARGE,
        ),
        (429, body("etcdserver: mvcc: database space exceeded", 8), errors.NO_SPACE),
        (400, body("etcdserver: key is not provided", 3), errors.OTHER),
        (404, b"404 page not found\n", errors.OTHER),
        (504, b"", errors.TIMEOUT),
    ],
)
def test_etcd_error_bodies_map_to_kinds(status: int, payload: bytes, kind: str) -> None:
    err = error_from_body(status, payload)
    assert err.kind == kind
    assert err.status == status


def test_error_keeps_etcd_message_and_code() -> None:
    err = error_from_body(400, body("etcdserver: request is too large", 3))
    assert (err.message, err.code) == ("etcdserver: request is too large", 3)


def test_streamed_error_objects_map_too() -> None:
    err = error_from_stream_error(
        {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader"}
    )
    assert err.kind == errors.NO_LEADER


def test_socket_failures_map_to_kinds() -> None:
    assert error_from_exception(TimeoutError()).kind == errors.TIMEOUT
    assert error_from_exception(ConnectionRefusedError()).kind == errors.CONN_REFUSED
    assert error_from_exception(aiohttp.ServerDisconnectedError()).kind == errors.CONN_LOST
    assert error_from_exception(ConnectionResetError()).kind == errors.CONN_LOST
    assert error_from_exception(ValueError("odd")).kind == errors.OTHER


def test_outcomes_are_success_then_every_error_kind() -> None:
    assert errors.OUTCOMES[0] == errors.SUCCESS
    assert set(errors.OUTCOMES[1:]) == set(errors.ERROR_KINDS)


@pytest.mark.parametrize(
    ("code", "details", "kind"),
    [
        (14, "etcdserver: no leader", errors.NO_LEADER),
        (14, "etcdserver: request timed out", errors.TIMEOUT),
        (3, "etcdserver: request is too large", errors.TOO_LARGE),
        (8, "grpc: received message larger than max (2200026 vs. 2097152)", errors.TOO_LARGE),
        (8, "etcdserver: mvcc: database space exceeded", errors.NO_SPACE),
        (11, "etcdserver: mvcc: required revision has been compacted", errors.OTHER),
        (4, "Deadline Exceeded", errors.TIMEOUT),
        (14, "failed to connect to all addresses; last error: Connection refused", "conn_refused"),
        (14, "Socket closed", errors.CONN_LOST),
        (14, "recvmsg:Connection reset by peer", errors.CONN_LOST),
    ],
)
def test_grpc_status_codes_and_details_map_to_the_same_kinds(
    code: int, details: str, kind: str
) -> None:
    err = errors.error_from_grpc(code, details)
    assert (err.kind, err.code, err.message, err.status) == (kind, code, details, 0)
