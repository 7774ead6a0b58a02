"""A small async client for etcd's v3 HTTP/JSON gateway (etcd 3.4+ and raftmon members).

Why our own: the load generator needs a lean request path (precomputed JSON bodies,
no parsing of successful answers it does not need), and the cluster tests and the
lab need a readable one (put, range, txn, delete, watch, leases, status, metrics).
Both sit on `EtcdClient.call_raw`, so they fail the same way: every failure is an
`EtcdError` whose `kind` is one of `loadgen.errors.ERROR_KINDS`.

Keys and values are `bytes` (or `str`, encoded as UTF-8) on the Python side and
base64 on the wire, as the gateway wants; int64 fields arrive as JSON strings.

    async with EtcdClient(["http://127.0.0.1:2379"]) as etcd:
        rev = (await etcd.put("foo", "bar")).revision
        kv = await etcd.get("foo")
        async with etcd.watch("foo", prefix=True) as stream:
            async for response in stream:
                ...
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadgen.errors import EtcdError, error_from_body, error_from_exception, error_from_stream_error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
    from ssl import SSLContext

log = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json"}
#: A watch answer can batch many events in one line; etcd caps messages near 2 MiB.
MAX_WATCH_LINE = 64 * 1024 * 1024


def b64(data: bytes | str) -> str:
    """Base64 text of `data` (str is UTF-8 encoded first), as the gateway wants bytes fields."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str | None) -> bytes:
    """Bytes of a base64 field; absent fields (the gateway omits empty ones) are b''."""
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes | str) -> bytes:
    """The range_end that selects every key starting with `prefix` (etcd's GetPrefixRangeEnd)."""
    raw = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return bytes(raw[: i + 1])
    return b"\x00"  # every key


def normalize_endpoint(endpoint: str) -> str:
    """`host:port` -> `http://host:port` (https:// URLs are kept); trailing slashes dropped."""
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    return endpoint


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


def _ints(obj: Mapping[str, Any], *names: str) -> dict[str, int]:
    """The named int64 fields of a gateway answer (JSON strings), absent ones as 0."""
    return {name: _int(obj.get(name)) for name in names}


def _key_range(key: bytes | str, range_end: bytes | str | None, prefix: bool) -> dict[str, Any]:
    """etcd's key / range_end pair; `prefix` selects every key that starts with `key`."""
    body: dict[str, Any] = {"key": b64(key)}
    if prefix:
        range_end = prefix_end(key)
    if range_end is not None:
        body["range_end"] = b64(range_end)
    return body


def _with_options(body: dict[str, Any], **options: bool | int) -> dict[str, Any]:
    """`body` plus every option that is set, as the gateway's JSON spells it: a flag as
    `true`, a number as a string (int64). Unset options stay out, as etcd's zero values."""
    for name, value in options.items():
        if value:
            body[name] = True if isinstance(value, bool) else str(value)
    return body


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key-value as etcd returns it (mvccpb.KeyValue)."""

    key: bytes
    value: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> KeyValue:
        return cls(
            unb64(obj.get("key")),
            unb64(obj.get("value")),
            **_ints(obj, "create_revision", "mod_revision", "version", "lease"),
        )


@dataclass(frozen=True, slots=True)
class Header:
    """The response header every KV answer carries."""

    cluster_id: int = 0
    member_id: int = 0
    revision: int = 0
    raft_term: int = 0

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Header:
        return cls(**_ints(obj or {}, "cluster_id", "member_id", "revision", "raft_term"))


@dataclass(frozen=True, slots=True)
class PutResponse:
    header: Header
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.header.revision


@dataclass(frozen=True, slots=True)
class RangeResponse:
    header: Header
    kvs: list[KeyValue] = field(default_factory=list)
    count: int = 0
    more: bool = False


@dataclass(frozen=True, slots=True)
class DeleteResponse:
    header: Header
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TxnResponse:
    header: Header
    succeeded: bool
    responses: list[dict[str, Any]] = field(default_factory=list)  # raw response ops


@dataclass(frozen=True, slots=True)
class Event:
    """A watch event: type is "PUT" or "DELETE" (the gateway omits PUT, the zero value)."""

    type: str
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchResponse:
    header: Header
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """/v3/maintenance/status of one member."""

    endpoint: str
    member_id: int
    leader: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    db_size: int
    version: str
    errors: list[str] = field(default_factory=list)

    @property
    def is_leader(self) -> bool:
        return self.member_id != 0 and self.member_id == self.leader


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class MetricSamples:
    """Samples scraped from a /metrics page, with lookups by name and labels."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def get(self, name: str, **labels: str) -> float | None:
        """Value of the first sample named `name` whose labels include `labels`."""
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return None

    def sum(self, name: str, **labels: str) -> float:
        """Sum over every sample named `name` whose labels include `labels` (0 when none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def parse_metrics(text: str) -> MetricSamples:
    """Parse Prometheus text exposition into samples."""
    return MetricSamples(
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )


# Builders for txn operations (the JSON the gateway expects inside compare/success/failure).
def put_op(key: bytes | str, value: bytes | str, *, lease: int = 0) -> dict[str, Any]:
    request: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def range_op(key: bytes | str, range_end: bytes | str | None = None) -> dict[str, Any]:
    request = {"key": b64(key)}
    if range_end is not None:
        request["range_end"] = b64(range_end)
    return {"request_range": request}


def delete_op(key: bytes | str, range_end: bytes | str | None = None) -> dict[str, Any]:
    request = {"key": b64(key)}
    if range_end is not None:
        request["range_end"] = b64(range_end)
    return {"request_delete_range": request}


def compare_value(key: bytes | str, value: bytes | str, result: str = "EQUAL") -> dict[str, Any]:
    return {"key": b64(key), "target": "VALUE", "result": result, "value": b64(value)}


def compare_version(key: bytes | str, version: int, result: str = "EQUAL") -> dict[str, Any]:
    return {"key": b64(key), "target": "VERSION", "result": result, "version": str(version)}


class EtcdClient:
    """Async client for one or more endpoints over one aiohttp session (keep-alive pool).

    Requests go to `endpoints[0]` unless `endpoint=` names another; the client never
    fails over by itself, because the load generator must see (and count) each failure.
    `limit` bounds the keep-alive sockets of the pool: HTTP/1.1 cannot multiplex, so
    concurrent requests each need a socket of their own.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        timeout: float = 5.0,
        limit: int = 100,
        session: aiohttp.ClientSession | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not eps:
            raise ValueError("at least one endpoint is required")
        self.endpoints = [normalize_endpoint(e) for e in eps]
        self.timeout = timeout
        self._limit = limit
        # https endpoints: the CA to trust and the client certificate to present
        self._ssl: SSLContext | bool = ssl or True
        self._session = session
        self._owns_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use (it must be created inside a loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, force_close=False, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the request path ------------------------------------------------------------
    async def call_raw(self, path: str, body: bytes, *, endpoint: str | None = None) -> bytes:
        """POST `body` to `path` and return the raw 200 answer; raise EtcdError otherwise.

        This is the load generator's hot path: no JSON is built or parsed here.
        """
        url = (endpoint or self.endpoints[0]) + path
        try:
            async with self.session.post(url, data=body, headers=JSON_HEADERS) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise error_from_body(resp.status, payload)
                return payload
        except EtcdError:
            raise
        except Exception as exc:  # every client-side failure becomes a counted kind
            raise error_from_exception(exc) from exc

    async def call(
        self, path: str, body: Mapping[str, Any], *, endpoint: str | None = None
    ) -> dict[str, Any]:
        """POST a JSON object and return the decoded JSON answer."""
        payload = await self.call_raw(path, json.dumps(body).encode(), endpoint=endpoint)
        decoded = json.loads(payload) if payload.strip() else {}
        if not isinstance(decoded, dict):
            raise EtcdError("other", f"unexpected answer {payload[:100]!r}", status=200)
        if "error" in decoded and "header" not in decoded and "result" not in decoded:
            raise error_from_stream_error(decoded.get("error"))
        return decoded

    # -- KV ---------------------------------------------------------------------------
    async def put(
        self,
        key: bytes | str,
        value: bytes | str,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        endpoint: str | None = None,
    ) -> PutResponse:
        body = _with_options({"key": b64(key), "value": b64(value)}, lease=lease, prev_kv=prev_kv)
        obj = await self.call("/v3/kv/put", body, endpoint=endpoint)
        prev = obj.get("prev_kv")
        return PutResponse(
            Header.from_json(obj.get("header")), KeyValue.from_json(prev) if prev else None
        )

    async def range(
        self,
        key: bytes | str,
        range_end: bytes | str | None = None,
        *,
        prefix: bool = False,
        serializable: bool = False,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        keys_only: bool = False,
        endpoint: str | None = None,
    ) -> RangeResponse:
        """Range over [key, range_end); `prefix=True` computes range_end from key."""
        body = _with_options(
            _key_range(key, range_end, prefix),
            serializable=serializable,
            revision=revision,
            limit=limit,
            count_only=count_only,
            keys_only=keys_only,
        )
        obj = await self.call("/v3/kv/range", body, endpoint=endpoint)
        return RangeResponse(
            Header.from_json(obj.get("header")),
            [KeyValue.from_json(kv) for kv in obj.get("kvs", [])],
            _int(obj.get("count")),
            bool(obj.get("more", False)),
        )

    async def get(self, key: bytes | str, **kwargs: Any) -> KeyValue | None:
        """The current value of one key, or None."""
        response = await self.range(key, **kwargs)
        return response.kvs[0] if response.kvs else None

    async def delete(
        self,
        key: bytes | str,
        range_end: bytes | str | None = None,
        *,
        prefix: bool = False,
        prev_kv: bool = False,
        endpoint: str | None = None,
    ) -> DeleteResponse:
        body = _with_options(_key_range(key, range_end, prefix), prev_kv=prev_kv)
        obj = await self.call("/v3/kv/deleterange", body, endpoint=endpoint)
        return DeleteResponse(
            Header.from_json(obj.get("header")),
            _int(obj.get("deleted")),
            [KeyValue.from_json(kv) for kv in obj.get("prev_kvs", [])],
        )

    async def txn(
        self,
        compare: Sequence[Mapping[str, Any]] = (),
        success: Sequence[Mapping[str, Any]] = (),
        failure: Sequence[Mapping[str, Any]] = (),
        *,
        endpoint: str | None = None,
    ) -> TxnResponse:
        """A transaction; build its parts with compare_value/put_op/range_op/delete_op."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        obj = await self.call("/v3/kv/txn", body, endpoint=endpoint)
        return TxnResponse(
            Header.from_json(obj.get("header")),
            bool(obj.get("succeeded", False)),
            list(obj.get("responses", [])),
        )

    async def compact(self, revision: int, *, endpoint: str | None = None) -> Header:
        obj = await self.call("/v3/kv/compaction", {"revision": str(revision)}, endpoint=endpoint)
        return Header.from_json(obj.get("header"))

    # -- watch ------------------------------------------------------------------------
    def watch(
        self,
        key: bytes | str,
        range_end: bytes | str | None = None,
        *,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        endpoint: str | None = None,
    ) -> WatchStream:
        """Open a watch stream (use `async with`, then `async for` over WatchResponse)."""
        request = _with_options(
            _key_range(key, range_end, prefix), start_revision=start_revision, prev_kv=prev_kv
        )
        url = (endpoint or self.endpoints[0]) + "/v3/watch"
        return WatchStream(self.session, url, {"create_request": request})

    # -- leases -----------------------------------------------------------------------
    async def lease_grant(
        self, ttl: int, lease_id: int = 0, *, endpoint: str | None = None
    ) -> tuple[int, int]:
        """Grant a lease; returns (ID, TTL). lease_id 0 lets the server choose."""
        body: dict[str, Any] = {"TTL": ttl}
        if lease_id:
            body["ID"] = lease_id
        obj = await self.call("/v3/lease/grant", body, endpoint=endpoint)
        if obj.get("error"):
            raise EtcdError("other", str(obj["error"]), status=200)
        return _int(obj.get("ID")), _int(obj.get("TTL"))

    async def lease_keepalive(self, lease_id: int, *, endpoint: str | None = None) -> int:
        """One keepalive round; returns the refreshed TTL (raises when the lease is gone)."""
        obj = await self.call("/v3/lease/keepalive", {"ID": lease_id}, endpoint=endpoint)
        return parse_keepalive(obj)

    async def lease_revoke(self, lease_id: int, *, endpoint: str | None = None) -> None:
        await self.call("/v3/kv/lease/revoke", {"ID": lease_id}, endpoint=endpoint)

    async def lease_timetolive(
        self, lease_id: int, *, keys: bool = False, endpoint: str | None = None
    ) -> dict[str, Any]:
        return await self.call(
            "/v3/kv/lease/timetolive", {"ID": lease_id, "keys": keys}, endpoint=endpoint
        )

    # -- maintenance, cluster, metrics -----------------------------------------------
    async def status(self, endpoint: str | None = None) -> MemberStatus:
        ep = endpoint or self.endpoints[0]
        obj = await self.call("/v3/maintenance/status", {}, endpoint=ep)
        return MemberStatus(
            endpoint=ep,
            member_id=_int(Header.from_json(obj.get("header")).member_id),
            leader=_int(obj.get("leader")),
            raft_term=_int(obj.get("raftTerm")),
            raft_index=_int(obj.get("raftIndex")),
            raft_applied_index=_int(obj.get("raftAppliedIndex")),
            db_size=_int(obj.get("dbSize")),
            version=str(obj.get("version", "")),
            errors=list(obj.get("errors", [])),
        )

    async def member_list(self, *, endpoint: str | None = None) -> list[dict[str, Any]]:
        obj = await self.call("/v3/cluster/member/list", {}, endpoint=endpoint)
        return list(obj.get("members", []))

    async def leader_endpoint(self) -> str | None:
        """The endpoint (among ours) whose member is the leader, or None when none says so."""
        for ep in self.endpoints:
            try:
                st = await self.status(ep)
            except EtcdError:
                continue
            if st.is_leader:
                return ep
        return None

    async def health(self, endpoint: str | None = None) -> bool:
        url = (endpoint or self.endpoints[0]) + "/health"
        try:
            async with self.session.get(url) as resp:
                obj = await resp.json(content_type=None)
                return resp.status == 200 and str(obj.get("health")) == "true"
        except Exception:
            return False

    async def metrics_text(self, endpoint: str | None = None) -> str:
        """The raw /metrics page of a member (etcd serves it on the client URL)."""
        url = (endpoint or self.endpoints[0]) + "/metrics"
        try:
            async with self.session.get(url) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise EtcdError("other", f"/metrics answered {resp.status}", status=resp.status)
                return text
        except EtcdError:
            raise
        except Exception as exc:
            raise error_from_exception(exc) from exc

    async def metrics(self, endpoint: str | None = None) -> MetricSamples:
        """Scrape and parse /metrics."""
        return parse_metrics(await self.metrics_text(endpoint))


def parse_keepalive(obj: Mapping[str, Any]) -> int:
    """TTL from a keepalive answer `{"result": {..., "TTL": "30"}}`; a gone lease raises."""
    if obj.get("error"):
        raise error_from_stream_error(obj["error"])
    result = obj.get("result", obj)
    ttl = _int(result.get("TTL")) if isinstance(result, dict) else 0
    if ttl <= 0:
        raise EtcdError("other", "lease not found (keepalive TTL 0)", status=200)
    return ttl


def parse_watch_line(obj: Mapping[str, Any]) -> WatchResponse:
    """One streamed watch line `{"result": {...}}` -> WatchResponse (errors raise)."""
    if obj.get("error"):
        raise error_from_stream_error(obj["error"])
    result = obj.get("result", {})
    events = [
        Event(
            type=str(ev.get("type", "PUT")),
            kv=KeyValue.from_json(ev.get("kv", {})),
            prev_kv=KeyValue.from_json(ev["prev_kv"]) if ev.get("prev_kv") else None,
        )
        for ev in result.get("events", [])
    ]
    return WatchResponse(
        header=Header.from_json(result.get("header")),
        watch_id=_int(result.get("watch_id")),
        created=bool(result.get("created", False)),
        canceled=bool(result.get("canceled", False)),
        compact_revision=_int(result.get("compact_revision")),
        events=events,
    )


class WatchStream:
    """A streamed watch over the gateway: one POST whose answer is newline-delimited JSON.

    `async with` opens it; iterating yields WatchResponse objects (the first has
    `created=True`); leaving the block closes the HTTP response, which cancels the watch.
    No total timeout applies: a watch is expected to be quiet for long stretches.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, body: Mapping[str, Any]) -> None:
        self._session = session
        self._url = url
        self._body = json.dumps(body).encode()
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> WatchStream:
        try:
            self._resp = await self._session.post(
                self._url,
                data=self._body,
                headers=JSON_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
            )
        except Exception as exc:
            raise error_from_exception(exc) from exc
        if self._resp.status != 200:
            payload = await self._resp.read()
            self._resp.close()
            raise error_from_body(self._resp.status, payload)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def __aiter__(self) -> AsyncIterator[WatchResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchResponse]:
        async for obj in self.raw_lines():
            yield parse_watch_line(obj)

    async def raw_lines(self) -> AsyncIterator[dict[str, Any]]:
        """Decoded JSON lines as they arrive (the load generator reads these directly)."""
        if self._resp is None:
            raise RuntimeError("WatchStream used outside `async with`")
        content = self._resp.content
        while True:
            try:
                line = await content.readline(max_line_length=MAX_WATCH_LINE)
            except Exception as exc:
                raise error_from_exception(exc) from exc
            if not line:
                return
            line = line.strip()
            if line:
                yield json.loads(line)
