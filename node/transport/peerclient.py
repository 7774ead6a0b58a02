"""Requests to other members outside the Raft streams: who a member is, and leader-only calls.

etcd keeps every connection to another member in its transport packages: rafthttp for
Raft traffic, leasehttp for lease keep-alives forwarded to the leader. `PeerClient` is
that second part. It asks a member's peer URL for the client URLs it advertises (the
member list, finding the leader's client URL) and forwards a leader-only client call to
the leader's client URL. It answers with plain values and raises `ForwardFailed` when
the leader cannot be reached; mapping that to a client error is the server's job.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping

    import aiohttp

MEMBER_INFO_PATH = "/raftmon/member"  # on the peer listener: name, id, client URLs
MEMBER_INFO_TIMEOUT_SECONDS = 2.0
PEER_HASHKV_PATH = "/members/hashkv"  # etcd's, on the peer listener: GET, JSON body
FORWARD_TIMEOUT_SECONDS = 5.0


class ForwardFailed(Exception):
    """The leader's client URL could not be reached or did not answer in time."""


class PeerRequestFailed(Exception):
    """A member's peer URL could not be reached or did not answer in time."""


class PeerClient:
    """One member's HTTP requests to other members that are not Raft messages."""

    def __init__(
        self,
        peer_urls: Mapping[int, str],
        *,
        peer_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
    ) -> None:
        """`peer_urls`: each other member's first peer URL. `peer_ssl` verifies peers
        (--peer-trusted-ca-file, presenting --peer-cert-file); `client_ssl` is used for
        the leader's client URL, as etcd's own gateway dials it with --cert-file."""
        self._peer_urls = dict(peer_urls)
        self._peer_ssl: ssl.SSLContext | bool = peer_ssl or True
        self._client_ssl: ssl.SSLContext | bool = client_ssl or True
        self._client_urls: dict[int, list[str]] = {}
        self._forward_session: aiohttp.ClientSession | None = None

    def set_peer_url(self, member_id: int, url: str | None) -> None:
        """A member joined, moved or (None) left: where to ask it from now on."""
        self._client_urls.pop(member_id, None)
        if url is None:
            self._peer_urls.pop(member_id, None)
        else:
            self._peer_urls[member_id] = url

    def forget_client_urls(self, member_id: int) -> None:
        """The member published new client URLs: ask again next time."""
        self._client_urls.pop(member_id, None)

    async def client_urls_of(self, member_id: int) -> list[str]:
        """Client URLs `member_id` advertises (asked over its peer URL once, then cached)."""
        import aiohttp  # imported once the peers are up (httphead.py)

        cached = self._client_urls.get(member_id)
        if cached is not None:
            return cached
        url = self._peer_urls.get(member_id)
        if url is None:
            return []
        timeout = aiohttp.ClientTimeout(total=MEMBER_INFO_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(ssl=self._peer_ssl)
            ) as session,
            session.get(url + MEMBER_INFO_PATH) as resp,
        ):
            info = await resp.json()
        urls = [str(u) for u in info.get("clientURLs", [])]
        self._client_urls[member_id] = urls
        return urls

    async def hash_kv_of(self, member_id: int, revision: int, seconds: float) -> tuple[int, str]:
        """Ask `member_id`'s peer URL for its HashKV at `revision`, as etcd's corruption
        check does (GET /members/hashkv, body {"revision": N}), waiting at most `seconds`:
        (HTTP status, body text)."""
        import aiohttp  # imported once the peers are up (httphead.py)

        url = self._peer_urls.get(member_id)
        if url is None:
            raise PeerRequestFailed(f"no peer URL for member {member_id:x}")
        body = json.dumps({"revision": revision} if revision else {}).encode()
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=seconds),
                    connector=aiohttp.TCPConnector(ssl=self._peer_ssl),
                ) as session,
                session.get(
                    url + PEER_HASHKV_PATH,
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as resp,
            ):
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise PeerRequestFailed(f"{url}{PEER_HASHKV_PATH}: {err!r}") from None

    async def forward(self, url: str, path: str, body: dict[str, Any]) -> str:
        """POST `body` as JSON to `url + path` (the leader's client URL); the answer's text."""
        import aiohttp  # imported once the peers are up (httphead.py)

        if self._forward_session is None:
            self._forward_session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(ssl=self._client_ssl),
            )
        try:
            async with self._forward_session.post(url + path, json=body) as resp:
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            raise ForwardFailed(f"{url}{path}") from None

    async def close(self) -> None:
        if self._forward_session is not None:
            await self._forward_session.close()


MEMBERS_PATH = "/members"  # etcd's, on the peer listener: the cluster's members as JSON
CLUSTER_ID_HEADER = "X-Etcd-Cluster-ID"


async def fetch_members(
    peer_urls: list[str], *, peer_ssl: ssl.SSLContext | None, seconds: float
) -> tuple[int, list[dict[str, Any]]]:
    """Ask running members, one peer URL after another, for the cluster's members (what a
    member joining with --initial-cluster-state existing does first): (cluster id, members).

    Raises PeerRequestFailed naming every URL tried when none answered.
    """
    import aiohttp  # imported once the peers are up (httphead.py)

    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=peer_ssl or True)
    ) as session:
        for url in peer_urls:
            try:
                async with session.get(url + MEMBERS_PATH) as resp:
                    if resp.status != 200:
                        failures.append(f"{url}: HTTP {resp.status}")
                        continue
                    members = await resp.json(content_type=None)
                    cluster_id = int(resp.headers.get(CLUSTER_ID_HEADER, "0"), 16)
                    return cluster_id, list(members)
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                failures.append(f"{url}: {err or type(err).__name__}")
    raise PeerRequestFailed("could not get cluster members from " + "; ".join(failures))
