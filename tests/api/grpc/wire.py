"""Client-side tools for the side-by-side gRPC tests: bounded streams, refusals, masks.

A sync grpcio stream blocks in `next()` with no timeout of its own; `Session` reads the
replies on a thread into a queue, so every wait in a test is bounded and a missing
reply fails with what did arrive instead of hanging until the call's deadline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

T = 10.0  # seconds: every call and every wait for a stream reply is bounded by this
STREAM_DEADLINE = 60.0  # seconds: a stream's whole life

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

_END = object()


class Session(Generic[Req, Resp]):
    """One bidirectional stream: `send` requests, `recv` replies with a bounded wait."""

    def __init__(self, open_stream: Callable[..., Iterator[Resp]]) -> None:
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._replies: queue.Queue[Any] = queue.Queue()
        self._call = open_stream(self._requests(), timeout=STREAM_DEADLINE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[Req]:
        while (request := self._outbox.get()) is not _END:
            yield request

    def _read(self) -> None:
        try:
            for reply in self._call:
                self._replies.put(reply)
            self._replies.put(_END)
        except grpc.RpcError as err:
            self._replies.put(err)

    def send(self, request: Req) -> None:
        self._outbox.put(request)

    def recv(self, timeout: float = T) -> Resp:
        """The next reply; fails the test if none comes in `timeout` or the stream ended."""
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply on the stream within {timeout} s") from None
        if reply is _END:
            raise AssertionError("the stream ended")
        if isinstance(reply, grpc.RpcError):
            raise reply
        return reply  # type: ignore[no-any-return]

    def end(self) -> grpc.RpcError | None:
        """Close our side and wait for the server's end: None (OK) or the error it sent."""
        self._outbox.put(_END)
        while True:
            reply = self._replies.get(timeout=T)
            if reply is _END:
                return None
            if isinstance(reply, grpc.RpcError):
                return reply

    def close(self) -> None:
        self._outbox.put(_END)
        self._call.cancel()  # type: ignore[attr-defined]
        self._reader.join(timeout=T)

    def __enter__(self) -> Session[Req, Resp]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status code and message a call fails with (the test fails if it succeeds)."""
    try:
        answer = call()
    except grpc.RpcError as err:
        return err.code(), err.details()
    raise AssertionError(f"expected a refusal, got {answer!r}")


# ---- field-by-field comparison -----------------------------------------------------------

_MEMBER_FIELDS = {"cluster_id", "member_id", "raft_term"}  # differ by construction
_REVISION_FIELDS = {"revision", "create_revision", "mod_revision", "compact_revision"}
_LEASE_FIELDS = {"lease", "ID"}


def masked(message: Message, base: int) -> dict[str, Any]:
    """`message` as a dict with the member's ids dropped, revisions made relative to
    `base` (the revision before the scenario) and lease ids reduced to "lease", so an
    answer of etcd and one of raftmon compare equal field by field."""
    tree = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _mask(tree, base)  # type: ignore[no-any-return]


def _mask(node: Any, base: int) -> Any:
    if isinstance(node, list):
        return [_mask(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _MEMBER_FIELDS:
            continue
        if key in _REVISION_FIELDS and int(value) > 0:
            out[key] = int(value) - base
        elif key in _LEASE_FIELDS and int(value) != 0:
            out[key] = "lease"
        else:
            out[key] = _mask(value, base)
    return out
