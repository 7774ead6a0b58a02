"""What the lock and election services share: clientv3's concurrency recipe, on our own KV.

etcd 3.4 serves v3lock and v3election with an in-process clientv3 client running the
`concurrency` package (Session, Mutex, Election) against the member itself. The recipe:

- A waiter's key is `<name>/<lease id in hex>`, put with the waiter's lease only if it
  does not exist yet (a txn on create_revision == 0), so the lease bounds the claim:
  when the lease expires or is revoked the key is deleted and the claim is gone.
- Waiters are ordered by create_revision. The owner is the oldest key under
  `<name>/`; a waiter waits until every key created before its own is deleted,
  watching only the newest of them each time (no herd on the owner's key).
- Waiting watches the member's watch hub from the revision the range was read at,
  so a delete between the read and the watch cannot be missed; nothing polls.

The in-process client is visible in one detail the recipe keeps: an error from an
inner KV call reaches the caller as the client hands it back, with etcd's text and
gRPC's Unknown code (`client_error`); etcd's v3lock answers a missing lease with
`etcdserver: requested lease not found` and code 2, not NotFound.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, TypeVar

from node import errors as E
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

    from node.server.kv_service import KVService

SESSION_TTL = 60  # clientv3 concurrency's defaultSessionTTL, seconds
LOST_WATCHER = "lost watcher waiting for delete"  # concurrency.waitDelete's own error

# clientv3 retries a repeatable call (Range, LeaseGrant; never Txn or DeleteRange) that
# failed as Unavailable, 25 ms apart, up to 100 times (defaultBackoffWaitBetween,
# defaultUnaryMaxRetries): a lock asked for during an election waits for the new leader.
# Only the errors an election ends are retried here: a call that already waited out
# the request timeout (ErrTimeout) or a member that is stopping would only wait 100
# times longer.
RETRY_BACKOFF_SECONDS = 0.025
RETRY_ATTEMPTS = 100
UNAVAILABLE: tuple[type[E.EtcdError], ...] = (
    E.ErrNoLeader,
    E.ErrLeaderChanged,
    E.ErrTimeoutDueToLeaderFail,
)

R = TypeVar("R")


def prefix_end(prefix: bytes) -> bytes:
    """The range_end covering every key that starts with `prefix` (clientv3's WithPrefix)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"  # every key
    return stripped[:-1] + bytes([stripped[-1] + 1])


def first_created(prefix: bytes) -> rq.RangeRequest:
    """The oldest key under `prefix` (clientv3's WithFirstCreate): the owner, the leader."""
    return rq.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rq.SortTarget.CREATE,
        sort_order=rq.SortOrder.ASCEND,
        limit=1,
    )


def last_created_up_to(prefix: bytes, max_create_revision: int) -> rq.RangeRequest:
    """The newest key under `prefix` created at or before `max_create_revision`."""
    return rq.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rq.SortTarget.CREATE,
        sort_order=rq.SortOrder.DESCEND,
        limit=1,
        max_create_revision=max_create_revision,
    )


def waiter_key(prefix: bytes, lease: int) -> bytes:
    """`<prefix><lease in hex>`, as Go's %x writes an int64 (a minus sign if negative)."""
    return prefix + f"{lease:x}".encode()


def client_error(err: E.EtcdError) -> E.EtcdError:
    """An inner call's error as etcd's in-process client returns it: same text, Unknown code.

    clientv3 turns every status it knows into a plain rpctypes.EtcdError, which the
    lock and election servers return as is; gRPC answers such an error as Unknown.
    """
    if type(err) is E.EtcdError:
        return err
    return E.EtcdError(err.message)


@contextlib.contextmanager
def as_client() -> Iterator[None]:
    """Inner KV calls inside this block fail as the in-process client fails (`client_error`)."""
    try:
        yield
    except E.EtcdError as err:
        raise client_error(err) from err


async def repeatable(call: Callable[[], Awaitable[R]]) -> R:
    """`call()`, retried as clientv3 retries a repeatable call that failed as Unavailable."""
    for _ in range(RETRY_ATTEMPTS - 1):
        try:
            return await call()
        except UNAVAILABLE:
            await asyncio.sleep(RETRY_BACKOFF_SECONDS)
    return await call()


async def read(svc: KVService, req: rq.RangeRequest) -> rq.RangeResponse:
    """A linearizable range, as the in-process client reads (retried, clientv3's errors)."""
    with as_client():
        return await repeatable(lambda: svc.range(req))


async def session_lease(svc: KVService, lease: int) -> int:
    """The lease a call's session uses: the caller's, or a new 60 s one for lease 0.

    etcd's servers open a clientv3 Session per call and orphan it at once, so a lock or
    a campaign without a lease is bounded by a fresh 60 s lease nobody keeps alive;
    Proclaim and Resign with lease 0 grant one too (and leave it to expire), as etcd does.
    """
    if lease != 0:
        return lease
    resp = await repeatable(lambda: svc.lease_grant(rq.LeaseGrantRequest(ttl=SESSION_TTL)))
    return resp.id


async def watch_events(
    svc: KVService, key: bytes, range_end: bytes, start_revision: int
) -> AsyncGenerator[rq.WatchResponse, None]:
    """The event batches of one watch on the member's own hub, until the caller stops.

    A watch canceled by compaction raises etcd's compacted error, as clientv3's
    WatchResponse.Err() reports it; the hub's stream ending first raises LOST_WATCHER.
    """
    bridge = svc.open_watch_stream()
    try:
        bridge.create(
            rq.WatchCreateRequest(key=key, range_end=range_end, start_revision=start_revision)
        )
        async for resp in bridge.results():
            if resp.canceled:
                if resp.compact_revision:
                    raise E.EtcdError(E.ErrCompacted.message)
                raise E.EtcdError(resp.cancel_reason or LOST_WATCHER)
            if resp.events:
                yield resp
        raise E.EtcdError(LOST_WATCHER)
    finally:
        bridge.close()


async def wait_delete(svc: KVService, key: bytes, revision: int) -> None:
    """Return once `key` is deleted at or after `revision` (concurrency.waitDelete)."""
    events = watch_events(svc, key, b"", revision)
    try:
        async for resp in events:
            if any(ev.type == rq.EventType.DELETE for ev in resp.events):
                return
    finally:
        await events.aclose()


async def wait_deletes(svc: KVService, prefix: bytes, max_create_revision: int) -> int:
    """Wait until no key under `prefix` was created at or before `max_create_revision`.

    Answers the revision of the read that found none (the header etcd's Lock returns).
    """
    while True:
        resp = await read(svc, last_created_up_to(prefix, max_create_revision))
        if not resp.kvs:
            return resp.revision
        await wait_delete(svc, resp.kvs[0].key, resp.revision)


# Clean-ups that outlive a cancelled call (a lock's key deleted after the client left);
# held here so none is garbage-collected before it finishes.
_CLEANUPS: set[asyncio.Task[object]] = set()


async def cleanup_on_cancel(cleanup: Callable[[], Awaitable[object]]) -> None:
    """Run `cleanup` to its end even if the calling task is cancelled again meanwhile.

    etcd undoes a cancelled wait with the client's own context, not the call's; errors
    of the clean-up are dropped, as etcd drops them.
    """

    async def quietly() -> object:
        with contextlib.suppress(Exception):
            return await cleanup()
        return None

    task: asyncio.Task[object] = asyncio.ensure_future(quietly())
    _CLEANUPS.add(task)
    task.add_done_callback(_CLEANUPS.discard)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)
